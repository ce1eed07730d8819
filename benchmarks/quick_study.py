"""Benchmark: the `quick` study end to end, cold and then fully cached, against an older tree in the same run.

With `--baseline REF` (e.g. `5673b82`), the tree at REF runs the same study first, cold, from a temporary git
worktree with the same interpreter and the same toolchain environments (each tree at its own default number
of jobs unless `--jobs` / `--baseline-jobs` say otherwise); then this tree runs it cold and once more fully
cached. It prints each wall time, the ratio baseline/this tree, the machine's load before and after each run,
and `dlcompat compare` of the two runs (every accuracy, flip, logit difference and attack rate must agree; timings
are the only expected change). Run: `make bench` or
`.venv/bin/python benchmarks/quick_study.py [--baseline REF] [--jobs N] [--keep DIR]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def timed_run(source: Path, out: Path, jobs: int | None) -> float:
    """Wall seconds of `dlcompat run --preset quick` with the package found in `source` (a tree's src/)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    command = [sys.executable, "-m", "dlcompat.cli", "run", "--preset", "quick", "--out", str(out), "--quiet"]
    if jobs:
        command += ["--jobs", str(jobs)]
    before = load()
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, cwd=source.parent)
    wall = time.perf_counter() - start
    print(f"  {source.parent.name}: {wall:.1f} s (--jobs {jobs or 'default'}; load {before} before, {load()} after)",
          flush=True)
    return wall


def worktree(ref: str, folder: Path) -> Path:
    """The tree at `ref` in `folder`, sharing this checkout's installed web runtimes; returns its src/."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-q", str(folder), ref], check=True)
    (folder / "web" / "node_modules").symlink_to(REPO / "web" / "node_modules")
    return folder / "src"


def compare(out_a: Path, out_b: Path) -> None:
    """`dlcompat compare` of the baseline run (A) and this tree's run (B), with this tree's code."""
    done = subprocess.run([sys.executable, "-m", "dlcompat.cli", "compare", "latest", "latest", "--out", str(out_a),
                           "--out-b", str(out_b), "--output", str(out_b / "compare-with-baseline")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    print(done.stderr.strip() + "\n" + done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None, help="jobs at once for this tree (default: its default)")
    parser.add_argument("--baseline", metavar="REF", help="a git ref whose tree runs the same study first")
    parser.add_argument("--baseline-jobs", type=int, default=None, help="jobs at once for the baseline tree")
    parser.add_argument("--keep", type=Path, help="keep both runs' output folders here")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="dlcompat-bench-"))
    out = args.keep or scratch
    print(f"quick study, cold then cached; {os.cpu_count()} CPUs; load {load()} at the start", flush=True)
    try:
        baseline = None
        if args.baseline:
            source = worktree(args.baseline, scratch / f"baseline-{args.baseline}")
            baseline = timed_run(source, out / "baseline", args.baseline_jobs)
        cold = timed_run(REPO / "src", out / "current", args.jobs)
        cached = timed_run(REPO / "src", out / "current", args.jobs)
        print(f"this tree: cold {cold:.1f} s, fully cached {cached:.1f} s")
        if baseline is not None:
            print(f"baseline {args.baseline}: cold {baseline:.1f} s; baseline/this tree = {baseline / cold:.2f}x")
            compare(out / "baseline", out / "current")
    finally:
        if args.baseline:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(scratch / f"baseline-{args.baseline}")], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
