"""Run every benchmark (or the ones named) and print their tables, then a summary table.

    python benchmarks/run.py              # all bench_*.py
    python benchmarks/run.py frames synth # bench_frames.py and bench_synth.py

Each `bench_<topic>.py` is a script that measures one thing against its
alternative in the same run and prints one table (ratios, not absolute claims).
The machine it ran on is printed first: compare numbers only within one run.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        wanted = {f"bench_{a.removeprefix('bench_').removesuffix('.py')}.py" for a in argv}
        unknown = wanted - {s.name for s in scripts}
        if unknown:
            print(
                f"unknown benchmark(s): {', '.join(sorted(unknown))}; have: "
                f"{', '.join(s.stem.removeprefix('bench_') for s in scripts)}",
                file=sys.stderr,
            )
            return 2
        scripts = [s for s in scripts if s.name in wanted]
    print(f"machine: {_machine()}\n")
    summary = []
    for script in scripts:
        print(f"## {script.stem}\n", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)])
        summary.append(
            (script.stem, "ok" if rc == 0 else f"failed ({rc})", time.perf_counter() - start)
        )
        print(flush=True)
    print("| benchmark | status | seconds |\n|---|---|---|")
    for name, status, seconds in summary:
        print(f"| {name} | {status} | {seconds:.0f} |")
    return 0 if all(s == "ok" for _, s, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
