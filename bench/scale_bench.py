"""ext2int's fixed cost on a real Immich as the library grows: the same run of 500 over a library of 500
photos and over one of 5,000.

    ../shared/immich-server/immich-server.sh start && source /tmp/immich-e2e/e2e.env
    python bench/scale_bench.py [--small 500] [--large 5000] [--batch 500]

NEVER point it at an Immich you care about: it creates libraries and moves their photos.

For each size: a new external library of the admin holding that many small photos (160x120 JPEGs with an
EXIF date, each different), scanned once, Immich's queues idle. Then, as a user runs it:
  - `plan` with EXT2INT_BATCH_SIZE=--batch (it lists the library and decides the next batch);
  - `run` with the same batch (verification and the delete gate on, the default trash mode).
Printed for each: wall time, the job's own CPU and peak RSS, and the requests per kind of call, side by
side for the two sizes: what grows with the library (the listing's pages, the remaining counts) is the
run's fixed cost; what a unit costs stays the same per unit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.real_bench import photo  # noqa: E402
from tests.e2e.immich import Api  # noqa: E402


def library_of(admin: Api, import_root: Path, count: int, seed: int) -> str:
    folder = import_root / f"scale-{count}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    for i in range(count):
        sub = folder / f"{i // 500:03}"  # folders of 500, as a camera's
        sub.mkdir(exist_ok=True)
        (sub / f"p{i:05}.jpg").write_bytes(photo(seed * 1_000_000 + i, size=(160, 120), quality=70))
    me = admin.me()["id"]
    library = admin.call("POST", "/libraries", json={"ownerId": me, "name": folder.name, "importPaths": [str(folder)]})
    admin.call("POST", f"/libraries/{library['id']}/scan")
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        total = admin.call("POST", "/search/statistics", json={"libraryId": library["id"]})["total"]
        if total >= count:
            break
        time.sleep(2)
    admin.wait_idle(timeout=3600)
    return library["id"]


def job(url: str, key: str, library: str, command: str, batch: int) -> dict:
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    peak = Path(tempfile.mkstemp(suffix=".peak")[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMMICH_", "EXT2INT_"))}
    env.update({"IMMICH_URL": url, "IMMICH_API_KEY": key, "EXT2INT_LIBRARY_IDS": library, "PYTHONPATH": str(ROOT),
                "EXT2INT_BATCH_SIZE": str(batch), "EXT2INT_QUEUE_THRESHOLD": "0", "EXT2INT_REPORT": str(report),
                "EXT2INT_LOG_LEVEL": "WARNING"})
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "peak.py"), str(peak), "-m", "job", command],
                          env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"ext2int {command} ended with {proc.returncode}: {proc.stderr[-2000:]}")
    data = json.loads(report.read_text())
    rss, cpu = peak.read_text().split()
    report.unlink()
    peak.unlink()
    return {"wall": wall, "rss": int(rss) // 1024, "cpu": float(cpu), "report": data}


def routes(report: dict) -> dict[str, int]:
    by = report.get("requests", {}).get("byRoute", {})
    return {name: (v["count"] if isinstance(v, dict) else int(v)) for name, v in by.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=500)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    url, key = os.environ["IMMICH_E2E_URL"], os.environ["IMMICH_E2E_API_KEY"]
    admin = Api(url, key)
    import_root = Path(os.environ["IMMICH_E2E_IMPORT_ROOT"])
    seed = random.randrange(1, 1000)
    results: dict[int, dict[str, dict]] = {}
    for size in (args.small, args.large):
        started = time.monotonic()
        library = library_of(admin, import_root, size, seed + size)
        print(f"library of {size}: made, scanned and idle in {time.monotonic() - started:.0f} s", flush=True)
        results[size] = {command: job(url, key, library, command, args.batch) for command in ("plan", "run")}
        admin.wait_idle(timeout=3600)
        moved = results[size]["run"]["report"]["counts"]
        print(f"  run: {moved}", flush=True)

    print(f"\n{dt.date.today()}: a run of {args.batch} over a library of {args.small} and of {args.large} photos "
          f"(Immich 3.1.0, defaults otherwise)\n")
    print("| library | command | wall | job CPU | job peak RSS | requests | per moved asset |")
    print("|---|---|---|---|---|---|---|")
    for size, by in results.items():
        for command, r in by.items():
            total = sum(routes(r["report"]).values())
            done = r["report"]["counts"].get("uploaded", 0) + r["report"]["counts"].get("merged", 0)
            per = f"{total / done:.2f}" if command == "run" and done else "-"
            print(f"| {size} | `{command}` | {r['wall']:.1f} s | {r['cpu']:.2f} s | {r['rss']} MB | {total} | {per} |")
    print("\nrequests per kind of call (plan / run), by library size; those that grow with the library are "
          "the run's fixed cost:")
    names = sorted({n for by in results.values() for r in by.values() for n in routes(r["report"])})
    small, large = results[args.small], results[args.large]
    for name in names:
        cells = [f"{routes(r['report']).get(name, 0)}" for by in (small, large) for r in (by["plan"], by["run"])]
        grows = "  <- grows" if any(routes(large[c]["report"]).get(name, 0) > routes(small[c]["report"]).get(name, 0) + 2
                                    for c in ("plan", "run")) else ""
        print(f"  {name:42} {args.small}: {cells[0]:>5} / {cells[1]:>5}   {args.large}: {cells[2]:>5} / {cells[3]:>5}{grows}")


if __name__ == "__main__":
    main()
