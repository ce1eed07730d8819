"""Benchmark: the paper-mnist study's wall time against the bare training floor measured in the same run.

Issue 20's target: `dlcompat run --preset paper-mnist` (20 epochs, 3 seeds) completes on this 2-core machine in
at most 1.3x the floor and 45 minutes. The floor is every training the study runs, done by the frameworks' bare
loops alone (`training_epoch.py`'s idiomatic loops, one thread, on the same 54,000 training images): for each
framework and model, one training per seed, and one more for the seed-0 `reproduce` job (the study trains it
again to check bit-reproducibility). Two figures of it:

- ideal: the loops' own seconds summed and divided by `--jobs` (perfect packing onto the cores, nothing else:
  no process start, import, data load or validation pass). The ratio is taken against this one;
- queued: the wall of running those trainings `--jobs` at a time, each in a fresh process of its framework's
  environment (process start, imports and data loading included), as a reference.

Then the study, with the preset's epochs and seeds replaced by `--epochs` / `--seeds` (a smaller profile keeps
everything else at the paper's scale: 10,000 test images, six attacks on 1,000 images, every route), cold, into
a fresh output folder, `--jobs` at a time. It prints the two walls, the ratio, the load before and after each
part, and where the study's time went: per job kind, the jobs' count and summed seconds (from its store).

`--floor-sample K` estimates the floor from one K-epoch bare training per framework and model instead of running
every training at full length; `--trainings-only` runs only the study's trainings, reproduce jobs and native
evaluations (the training part against the floor; its kept folder resumes into the whole study).

Run: `.venv/bin/python benchmarks/paper_mnist.py [--epochs 20] [--seeds 3] [--jobs 2] [--keep DIR]
[--skip-floor] [--floor-sample K] [--trainings-only]` (the full size is over an hour on two cores;
`--epochs 1 --seeds 1` profiles the rest).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness_overhead import child_result
from quick_study import load
from training_epoch import FRAMEWORKS, data_dir

REPO = Path(__file__).resolve().parents[1]
MODELS = ("lenet1", "lenet5")


def trainings(config: Any) -> list[tuple[str, str, int]]:
    """(framework, model, seed) of every training the study runs, a reproduce job's included."""
    out = []
    for framework in FRAMEWORKS:
        for model in MODELS:
            out += [(framework, model, seed) for seed in config.seeds]
            if config.check_reproducibility:
                out.append((framework, model, config.seeds[0]))
    return out


def _bare(run: tuple[str, str, int], epochs: int) -> list[float]:
    """The epoch times of one bare training (framework, model, seed) in its framework's environment, one thread."""
    from dlcompat.envs.registry import get_env
    from dlcompat.frameworks.registry import framework_entry

    framework, model, seed = run
    env = get_env(framework_entry(framework).env)
    script = Path(__file__).with_name("training_epoch.py")
    result = child_result([str(env.interpreter()), str(script), "--child", framework, "--bare", model,
                           "--seed", str(seed), "--epochs", str(epochs)], framework,
                          env={**env.worker_environ(1), "DLCOMPAT_DATA_DIR": str(data_dir())})
    if "skipped" in result:
        raise SystemExit(f"bare training of {framework} {model} failed: {result['skipped']}")
    return result["epoch_times"]


def _not_built(runs: list[tuple[str, str, int]]) -> list[str]:
    from dlcompat.envs.registry import get_env
    from dlcompat.frameworks.registry import framework_entry

    return sorted({fw for fw, _, _ in runs if not get_env(framework_entry(fw).env).exists()})


def floor(runs: list[tuple[str, str, int]], epochs: int, jobs: int) -> tuple[float, float, list[str]]:
    """(ideal seconds, queued wall seconds, skipped frameworks) of the bare trainings `runs`."""
    skipped = _not_built(runs)
    start = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        loops = list(pool.map(lambda run: sum(_bare(run, epochs)), [r for r in runs if r[0] not in skipped]))
    return sum(loops) / jobs, time.perf_counter() - start, skipped


def sampled_floor(runs: list[tuple[str, str, int]], epochs: int, sample: int,
                  jobs: int) -> tuple[float, list[str], list[str]]:
    """(ideal seconds, per-training lines, skipped frameworks) of the bare trainings `runs` at `epochs`, estimated
    from one `sample`-epoch bare training per framework and model: its first epoch (compilation and warm-up
    included) plus `epochs` - 1 times the median of its later epochs. A training's cost does not depend on its
    seed, so the sample stands for every seed and the reproduce job."""
    skipped = _not_built(runs)
    kinds = sorted({(fw, model) for fw, model, _ in runs if fw not in skipped})
    with ThreadPoolExecutor(jobs) as pool:
        times = dict(zip(kinds, pool.map(lambda kind: _bare((*kind, 0), sample), kinds), strict=True))
    estimate = {kind: t[0] + (epochs - 1) * statistics.median(t[1:]) for kind, t in times.items()}
    count = {kind: sum(1 for fw, model, _ in runs if (fw, model) == kind) for kind in kinds}
    lines = [f"  {fw:10s} {model:6s} epochs {' '.join(f'{x:.1f}' for x in times[fw, model])} s -> "
             f"{estimate[fw, model]:.1f} s at {epochs} epochs x {count[fw, model]} trainings"
             for fw, model in kinds]
    return sum(estimate[kind] * count[kind] for kind in kinds) / jobs, lines, skipped


def study_config(epochs: int, seeds: int, folder: Path, trainings_only: bool = False) -> Path:
    """The preset at `epochs` and `seeds`; `trainings_only`: its trainings, reproduce jobs and native evaluations
    alone (no migration, deployment or attack). Their job keys are the full study's, so a `--keep` folder of it
    resumes into the whole study: `dlcompat run --preset paper-mnist --out DIR` (at the preset's size)."""
    from dlcompat.study.config import config_to_toml, load_preset

    preset = load_preset("paper-mnist")
    update: dict[str, Any] = {"seeds": list(range(seeds)), "train": preset.train.model_copy(update={"epochs": epochs})}
    if trainings_only:
        update |= {"runtimes": [], "migration": [], "attacks": preset.attacks.model_copy(update={"methods": []})}
    config = preset.model_copy(update=update)
    path = folder / "paper-mnist.toml"
    path.write_text(config_to_toml(config))
    return path


def where_time_went(out: Path) -> list[str]:
    with sqlite3.connect(out / "results.sqlite") as db:
        found = db.execute("select kind, status, count(*), sum(duration_s) from jobs group by kind, status "
                           "order by sum(duration_s) desc").fetchall()
    return [f"  {kind:12s} {status:11s} {count:5d} jobs {seconds or 0:9.1f} s"
            for kind, status, count, seconds in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs per training (the preset's 20)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (the preset's 3)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="jobs at once, study and floor alike")
    parser.add_argument("--keep", type=Path, help="keep the study's output folder here")
    parser.add_argument("--skip-floor", action="store_true", help="run the study only (no ratio)")
    parser.add_argument("--floor-sample", type=int, metavar="K",
                        help="estimate the floor from one K-epoch bare training per framework and model (K >= 2) "
                             "instead of running every training at full length")
    parser.add_argument("--trainings-only", action="store_true",
                        help="the study's trainings, reproduce jobs and native evaluations only: its training part "
                             "against the floor (--keep it, then resume the whole preset in that folder)")
    args = parser.parse_args()
    if not (data_dir() / "mnist").is_dir():
        raise SystemExit(f"MNIST not found under {data_dir()}: set DLCOMPAT_DATA_DIR to the folder holding mnist/")
    sys.path.insert(0, str(REPO / "src"))
    scratch = Path(tempfile.mkdtemp(prefix="dlcompat-paper-"))
    out = args.keep or scratch / "out"
    try:
        if args.floor_sample is not None and args.floor_sample < 2:
            raise SystemExit("--floor-sample needs at least 2 epochs (the first one includes compilation)")
        config_path = study_config(args.epochs, args.seeds, scratch, args.trainings_only)
        from dlcompat.study.config import load_config

        config = load_config(config_path)
        part = "its trainings and native evaluations only" if args.trainings_only else "the whole study"
        print(f"paper-mnist at {args.epochs} epochs x {args.seeds} seeds, {part}; {os.cpu_count()} CPUs, "
              f"--jobs {args.jobs}; load {load()} at the start", flush=True)
        ideal = queued = None
        if args.floor_sample and not args.skip_floor:
            runs = trainings(config)
            ideal, lines, skipped = sampled_floor(runs, args.epochs, args.floor_sample, args.jobs)
            print(f"floor: {len(runs)} bare trainings, ideal {ideal:.1f} s estimated from {args.floor_sample}-epoch "
                  f"samples{f' (skipped, not built: {skipped})' if skipped else ''}; load {load()} after", flush=True)
            print("\n".join(lines), flush=True)
        elif not args.skip_floor:
            runs = trainings(config)
            ideal, queued, skipped = floor(runs, args.epochs, args.jobs)
            print(f"floor: {len(runs)} bare trainings, ideal {ideal:.1f} s, queued {queued:.1f} s"
                  f"{f' (skipped, not built: {skipped})' if skipped else ''}; load {load()} after", flush=True)
        before = load()
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "dlcompat.cli", "run", str(config_path), "--out", str(out),
                        "--data-dir", str(data_dir()), "--jobs", str(args.jobs), "--quiet"], check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO / "src")}, cwd=REPO)
        wall = time.perf_counter() - start
        print(f"study: {wall:.1f} s ({wall / 60:.1f} min; load {before} before, {load()} after)")
        print("where its time went (jobs' own seconds, summed over the workers):")
        print("\n".join(where_time_went(out)))
        if ideal:
            queued_ratio = f"; study / queued floor = {wall / queued:.2f}x" if queued else ""
            print(f"study / ideal floor = {wall / ideal:.2f}x (target <= 1.3x){queued_ratio}; at the preset's size "
                  "the study must also end within 45 min")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
