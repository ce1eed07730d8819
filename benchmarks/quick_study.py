"""Benchmark: the `quick` study end to end, cold and then fully cached, in one process run.

Prints wall-clock seconds of each and the ratio cached/cold (the cost of a re-run that finds every
job in the store; the target is a few seconds at most). Run: `make bench` or
`.venv/bin/python benchmarks/quick_study.py [--jobs N]`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_run(out: Path, jobs: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlcompat.cli", "run", "--preset", "quick", "--out", str(out),
                    "--jobs", str(jobs), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="dlcompat-bench-"))
    try:
        cold = timed_run(out, args.jobs)
        cached = timed_run(out, args.jobs)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    print(f"quick study, --jobs {args.jobs}: cold {cold:.1f} s, fully cached {cached:.1f} s, "
          f"cached/cold = {cached / cold:.3f}")


if __name__ == "__main__":
    main()
