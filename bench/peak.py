"""Run a Python module or script and write its own peak resident memory (KiB) and the CPU seconds it
used (user + system, all its threads) to a file, on one line: "KIB SECONDS".

    python bench/peak.py OUT -m job plan
    python bench/peak.py OUT bench/baselines.py naive ...

Why not the child's `ru_maxrss` from wait4: Linux carries the high-water mark of the memory a process
had before exec() into its rusage, and a child spawned by Python (vfork) had the parent's memory: a
benchmark holding a 100k-asset fake world would read its own size as the child's. VmHWM in
/proc/self/status belongs to the memory map exec() created, so it is the program's alone.
"""

from __future__ import annotations

import os
import runpy
import sys


def peak_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    out, target, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    try:
        if target == "-m":
            sys.argv = [rest[0], *rest[1:]]
            runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [target, *rest]
            runpy.run_path(target, run_name="__main__")
    finally:
        times = os.times()
        with open(out, "w", encoding="ascii") as f:
            f.write(f"{peak_kib()} {times.user + times.system:.3f}")


if __name__ == "__main__":
    main()
