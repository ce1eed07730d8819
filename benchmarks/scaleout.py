"""Benchmark: how a study scales out. The speed-up of 2 local workers over 1, and of a 2-node Ray cluster over
the local executor (1 worker), on the `quick` study, all measured cold in the same run.

Each run is `dlcompat run --preset quick --quiet` in a fresh output folder (nothing cached), one thread per
job (the preset's budget): `--jobs 1`, `--jobs 2`, and `--executor ray --address …` on a cluster of two
nodes of one CPU each, started before its run (an existing cluster, as a user would have one; Ray's own
multi-node harness, loopback only). Toolchain environments are built, and every framework imported once,
before anything is timed. Targets on two cores: ≥ 1.7× for two local workers, ≥ 1.6× for the Ray cluster.

It also prints what the plan allows: from the 1-worker run's job durations, the total work, the critical
path (the longest chain of dependent jobs) and the bound they put on any 2-slot speed-up,
min(2, work / critical path). Figures are wall-clock and as noisy as the machine: run it on a quiet one.

Run: `.venv/bin/python benchmarks/scaleout.py [--preset quick | --config study.toml] [--repeats 1]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "dlcompat.cli", "run"]


def timed_run(args: list[str], out: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run([*CLI, *args, "--out", str(out), "--quiet"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"dlcompat run {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return seconds


def prepare(study: list[str]) -> None:
    """Build missing toolchain environments and import every framework once (page cache), untimed."""
    from dlcompat.study.config import load_config, load_preset
    from dlcompat.study.plan import build_plan
    from dlcompat.study.runner import preflight, resolve_frameworks

    config = load_preset(study[1]) if study[0] == "--preset" else load_config(Path(study[0]))
    unavailable = resolve_frameworks(config)
    preflight(config, build_plan(config, None, unavailable))
    warm = "import importlib\nfor m in ('torch','tensorflow','jax','flax','pytensor','onnx','onnxruntime','ray'):\n" \
           "    try: importlib.import_module(m)\n    except Exception: pass\n"
    subprocess.run([sys.executable, "-c", warm], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_id(out: Path) -> str:
    from dlcompat.store.db import ResultStore, database_url

    return str(ResultStore(database_url(out)).run("latest")["id"])


def plan_bound(out: Path) -> dict[str, float]:
    """Total work, critical path and the 2-slot speed-up bound, from a finished run's job durations."""
    from dlcompat.store.db import ResultStore, database_url

    store = ResultStore(database_url(out))
    run = store.run("latest")
    jobs = {key: store.job(key) for key in run["job_keys"]}
    finish: dict[str, float] = {}
    for key in run["job_keys"]:  # stored in topological order
        job = jobs[key]
        if job is None:
            continue
        start = max((finish.get(dep, 0.0) for dep in job["deps"].values()), default=0.0)
        finish[key] = start + float(job["duration_s"] or 0.0)
    work = sum(float(j["duration_s"] or 0.0) for j in jobs.values() if j)
    critical = max(finish.values(), default=0.0)
    return {"work_s": work, "critical_s": critical, "bound": min(2.0, work / critical) if critical else 1.0}


def start_cluster() -> object:
    from dlcompat.study.executors.ray import local_cluster_token, quiet_ray

    quiet_ray(local=True)
    from ray.cluster_utils import Cluster

    local_cluster_token()

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * 2**20,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, object_store_memory=100 * 2**20)
    cluster.wait_for_nodes()
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--config", type=Path, help="a study config instead of a preset")
    parser.add_argument("--repeats", type=int, default=1, help="cold runs of each setting (the median is used)")
    parser.add_argument("--keep", type=Path, help="keep the runs' output folders here (default: removed)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start", flush=True)
    study = [str(args.config)] if args.config else ["--preset", args.preset]
    name = args.config.name if args.config else args.preset
    prepare(study)
    root = args.keep or Path(tempfile.mkdtemp(prefix="dlcompat-scaleout-"))
    root.mkdir(parents=True, exist_ok=True)
    times: dict[str, list[float]] = {"local-1": [], "local-2": [], "ray-2-nodes": []}
    bound: dict[str, float] = {}
    plans: set[str] = set()
    cluster = start_cluster()
    try:
        for i in range(args.repeats):
            base = study
            times["local-1"].append(timed_run([*base, "--jobs", "1"], root / f"local1-{i}"))
            bound = plan_bound(root / f"local1-{i}")
            times["local-2"].append(timed_run([*base, "--jobs", "2"], root / f"local2-{i}"))
            times["ray-2-nodes"].append(timed_run([*base, "--executor", "ray", "--address", cluster.address,
                                                   "--artifacts", (root / f"shared-{i}").as_uri()],
                                                  root / f"ray-{i}"))
            plans |= {run_id(root / f"{name}-{i}") for name in ("local1", "local2", "ray")}
            print(json.dumps({k: round(v[-1], 1) for k, v in times.items()}), flush=True)
    finally:
        cluster.shutdown()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if len(plans) > 1:
        print(f"WARNING: the runs executed {len(plans)} different plans ({', '.join(sorted(plans))}): the code or "
              "the preset changed during the benchmark, so these figures do not compare like with like")
    t = {k: statistics.median(v) for k, v in times.items()}
    print(f"{name} study, cold, one thread per job ({args.repeats} run(s) each, median): "
          f"local 1 worker {t['local-1']:.1f} s, local 2 workers {t['local-2']:.1f} s, "
          f"Ray 2 nodes x 1 CPU {t['ray-2-nodes']:.1f} s")
    print(f"speed-up 2 local workers / 1: {t['local-1'] / t['local-2']:.2f}x (target >= 1.7)")
    print(f"speed-up Ray 2 nodes / local 1 worker: {t['local-1'] / t['ray-2-nodes']:.2f}x (target >= 1.6); "
          f"Ray 2 nodes / local 2 workers: {t['local-2'] / t['ray-2-nodes']:.2f}x")
    print(f"the plan allows at most {bound['bound']:.2f}x on 2 slots: {bound['work_s']:.1f} s of job work, "
          f"critical path {bound['critical_s']:.1f} s (job durations of the 1-worker run, startup excluded)")
    print(f"load average {os.getloadavg()[0]:.1f} at the end: other work on this machine makes these figures noisy")


if __name__ == "__main__":
    main()
