"""Benchmarks against the fake Immich: ratios measured in the same run, never absolute timings.

    python bench/fake_bench.py            # the full table (2 GB asset included; a few minutes)
    python bench/fake_bench.py --quick    # smaller sizes, for a quick look
    python bench/fake_bench.py --only-fixed-cost   # only measure 4b

The fake serves synthetic bytes generated on the fly (a 2 GB asset costs no disk or memory) and answers
each request after an emulated latency, like a server on a network; the job and the baselines
(bench/baselines.py) run as separate processes against it, one measurement at a time.

Measured:
  1. throughput of a full move vs a raw loop that only downloads and uploads the same bytes (goal >= 0.9x)
  2. the job at concurrency 1, 2, 4 vs a sequential, whole-file-in-memory first script (goal >= 3x at 4)
  3. peak RSS of the job moving one 1 MB, 100 MB and 2 GB asset (goal: flat, <= 80 MB)
  4. `plan` over a 100k-asset library, the next batch of 100 decided as `run` would: time and peak RSS
     (goal <= 60 s, <= 200 MB)
  4b. a whole `run` of 100 over the same library, as an hourly CronJob does (goal <= 10 s, <= 200 MB)
  5. HTTP requests per asset, amortised over a run (goal <= 10)
  6. with Immich's own costs modelled (tests/fake_immich/costs.py: each call's server CPU as the real
     3.1.0 showed it, uploads digested in the background, 2 cores): the job vs the naive script at
     concurrency 4, until the fake is idle again, as bench/real_bench.py measures a real Immich
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_immich import Blob, FakeImmich, Scene  # noqa: E402
from tests.fake_immich.costs import Costs  # noqa: E402

MB = 1024 * 1024


def world(count: int, size: int, latency: float) -> tuple[FakeImmich, Scene, str]:
    fake = FakeImmich().start()
    fake.world.latency = latency
    fake.world.keep_uploads_up_to = 0  # received bytes are hashed and counted, not kept
    fake.world.cache_searches = True  # like Immich's index: a page costs the page, not the library
    scene = Scene(fake)
    library = scene.library("bench")
    with fake.world.lock:
        for i in range(count):
            path = f"{library.import_paths[0]}/p{i:06}.jpg"
            fake.world.put_file(path, Blob.synthetic(10_000 + i, size), mtime="2026-11-25T00:36:23.006Z")
        fake.world.embedded.clear()
        fake.world.scan(library)
    return fake, scene, library.id


def measure(args: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB, the child's own: see bench/peak.py) and stdout of a Python child
    run as `python bench/peak.py PEAKFILE *args`. Output goes to files, not pipes, so a chatty child
    never blocks."""
    peak = Path(tempfile.mkstemp(suffix=".peak")[1])
    command = [sys.executable, str(ROOT / "bench" / "peak.py"), str(peak), *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, stdout=out, stderr=err, text=True, cwd=ROOT)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"{command} exited {proc.returncode}: {err.read()[-2000:]}")
        rss = int(peak.read_text().split()[0])
        peak.unlink()
        return wall, rss, out.read()


def job(fake: FakeImmich, scene: Scene, library: str, command: str = "run", **env: str) -> tuple[dict, float, int]:
    """The job as a user runs it: its own defaults (the tests' short claim wait removed), the whole library
    in one run unless `env` says otherwise."""
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    full = {k: v for k, v in os.environ.items() if not k.startswith(("IMMICH_", "EXT2INT_"))}
    settings = {"EXT2INT_BATCH_SIZE": "1000000", **env}
    full.update(scene.env(EXT2INT_LIBRARY_IDS=library, EXT2INT_REPORT=str(report), EXT2INT_QUEUE_THRESHOLD="0",
                          EXT2INT_LOG_LEVEL="WARNING", **settings))
    for name in ("EXT2INT_CLAIM_WAIT", "EXT2INT_SETTLE_CONFIRM"):
        full.pop(name, None)
    full["PYTHONPATH"] = str(ROOT)
    wall, rss, _ = measure(["-m", "job", command], full)
    data = json.loads(report.read_text())
    report.unlink()
    return data, wall, rss


def baseline(mode: str, fake: FakeImmich, scene: Scene, library: str, concurrency: int = 1) -> tuple[float, int, int, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    _, rss, out = measure([str(ROOT / "bench" / "baselines.py"), mode, fake.url, scene.key, library,
                           str(concurrency)], env)
    count, moved, seconds = out.split()
    return float(seconds), rss, int(count), int(moved)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else 0.0


def fixed_cost(count: int) -> tuple[str, str, str, str]:
    """What an hourly run over a big library costs: a whole run of 100 over `count` assets, from the
    process' start to its end (listing, the remaining count, the gate's lookups, and the 100 moves)."""
    fake, scene, lib = world(count, 4096, 0.0)
    report, wall, rss = job(fake, scene, lib, "run", EXT2INT_BATCH_SIZE="100")
    fake.stop()
    assert report["assetsMoved"] == 100, report["counts"]
    return (f"run of 100 over {count} assets (whole process)", f"{wall:.1f} s, {rss / 1024:.0f} MB", "",
            "<= 10 s, <= 200 MB")


def with_costs(count: int) -> list[tuple[str, str, str, str]]:
    """Measure 6: the job and the naive script, each on a fresh world whose Immich costs what the real one
    does, until it is idle again. Ratios to compare with bench/real_bench.py's ext2int and naive rows."""
    rows, seen = [], {}
    for name in ("naive", "ext2int"):
        fake, scene, lib = world(count, 300_000, 0.0)
        fake.world.costs = costs = Costs()
        started = time.perf_counter()
        if name == "naive":
            _, _, moved, _ = baseline("naive", fake, scene, lib, 4)
        else:
            report, _, _ = job(fake, scene, lib, EXT2INT_CONCURRENCY="4")
            moved = report["assetsMoved"]
            requests = report["requests"]["total"] / max(1, moved)
        costs.idle()
        seconds = time.perf_counter() - started
        seen[name] = (moved / seconds, costs.spent / max(1, moved))
        costs.close()
        fake.stop()
    (job_rate, job_cpu), (naive_rate, naive_cpu) = seen["ext2int"], seen["naive"]
    rows.append((f"with Immich's costs (2 cores), {count} photos: until idle vs the naive script",
                 f"{job_rate:.1f} vs {naive_rate:.1f} assets/s", f"{job_rate / naive_rate:.2f}x",
                 "the real server's ratio (README)"))
    rows.append(("  Immich's modelled CPU per asset vs the naive script", f"{job_cpu * 1000:.0f} vs {naive_cpu * 1000:.0f} ms",
                 f"{job_cpu / naive_cpu:.2f}x", f"{requests:.2f} requests per asset"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only-fixed-cost", action="store_true", help="only the run of 100 over 100k assets")
    parser.add_argument("--only-costs", action="store_true", help="only measure 6 (Immich's costs modelled)")
    args = parser.parse_args()
    quick = args.quick
    if args.only_fixed_cost:
        print(fixed_cost(100_000))
        return
    if args.only_costs:
        for row in with_costs(60 if quick else 200):
            print("  ".join(row))
        return
    rows: list[tuple[str, str, str, str]] = []

    # 1. throughput: full move vs download+upload only, same concurrency, photo-sized files
    n, size, latency = (60, 2 * MB, 0.002) if quick else (150, 4 * MB, 0.002)
    fake, scene, lib = world(n, size, latency)
    raw_seconds, _, raw_count, raw_bytes = baseline("raw", fake, scene, lib, 2)
    fake.stop()
    fake, scene, lib = world(n, size, latency)
    report, _, _ = job(fake, scene, lib, EXT2INT_CONCURRENCY="2")
    fake.stop()
    job_seconds = report["durationSeconds"]
    ratio = (report["bytesMoved"] / job_seconds) / (raw_bytes / raw_seconds)
    rows.append(("throughput vs raw download+upload (concurrency 2)",
                 f"{report['bytesMoved'] / job_seconds / MB:.0f} vs {raw_bytes / raw_seconds / MB:.0f} MB/s",
                 f"{ratio:.2f}x", ">= 0.9x"))
    requests_per_asset = report["requests"]["total"] / report["assetsMoved"]

    # 2. concurrency vs a naive sequential script
    n, size, latency = (40, 512 * 1024, 0.005) if quick else (120, 512 * 1024, 0.005)
    fake, scene, lib = world(n, size, latency)
    naive_seconds, naive_rss, naive_count, _ = baseline("naive", fake, scene, lib, 1)
    fake.stop()
    naive_rate = rate(naive_count, naive_seconds)
    for concurrency in (1, 2, 4):
        fake, scene, lib = world(n, size, latency)
        report, _, _ = job(fake, scene, lib, EXT2INT_CONCURRENCY=str(concurrency))
        fake.stop()
        job_rate = rate(report["assetsMoved"], report["durationSeconds"])
        rows.append((f"concurrency {concurrency} vs naive sequential script", f"{job_rate:.1f} vs {naive_rate:.1f} assets/s",
                     f"{job_rate / naive_rate:.2f}x", ">= 3x at 4" if concurrency == 4 else ""))

    # 3. memory per asset size
    sizes = [1 * MB, 100 * MB] + ([] if quick else [2048 * MB])
    for size in sizes:
        fake, scene, lib = world(1, size, 0.0)
        report, _, rss = job(fake, scene, lib, EXT2INT_CONCURRENCY="1", EXT2INT_HTTP_TIMEOUT="300")
        fake.stop()
        assert report["assetsMoved"] == 1, report
        rows.append((f"peak RSS moving one {size // MB} MB asset", f"{rss / 1024:.0f} MB", "", "flat, <= 80 MB"))
    fake, scene, lib = world(1, 100 * MB, 0.0)
    _, naive_rss, _, _ = baseline("naive", fake, scene, lib, 1)
    fake.stop()
    rows.append(("  (the naive script, same 100 MB asset)", f"{naive_rss / 1024:.0f} MB", "", ""))

    # 4. plan over a large library
    count = 20_000 if quick else 100_000
    fake, scene, lib = world(count, 4096, 0.0)
    report, wall, rss = job(fake, scene, lib, "plan", EXT2INT_BATCH_SIZE="100")  # the next run's batch looked at closely
    fake.stop()
    assert report["counts"]["planned"] == count, report["counts"]
    rows.append((f"plan over {count} assets", f"{wall:.1f} s, {rss / 1024:.0f} MB", "", "<= 60 s, <= 200 MB"))
    rows.append(fixed_cost(count))

    # 5. requests per asset
    rows.append(("HTTP requests per asset (amortised, plain photos)", f"{requests_per_asset:.2f}", "", "<= 10"))

    # 6. with Immich's costs modelled
    rows += with_costs(60 if quick else 200)

    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':<24} {'ratio':>7}  goal")
    for name, result, ratio_text, goal in rows:
        print(f"{name:<{width}}  {result:<24} {ratio_text:>7}  {goal}")


if __name__ == "__main__":
    main()
