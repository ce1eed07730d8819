"""Benchmark: what the `paper-cifar10` preset's training costs on this machine's CPU, per framework and model.

Per framework, in a fresh process of its toolchain environment (Theano in `theano`, the rest in `main`), one thread
(a study trains two models at a time on a 2-core machine, one per core): ResNet-20 and VGG-16 built from the zoo
spec (seed 0), trained by the adapter exactly as the train job calls it, with the preset's own settings (SGD with
momentum, batch 128, weight decay, crop-and-flip augmentation), for `--epochs` epochs of the first `--images`
CIFAR-10 training images (`../shared/data` or `DLCOMPAT_DATA_DIR`). The first epoch includes compilation and
tracing; the cost per image is the median of the later epochs' times over the images, extrapolated to the preset's
45,000-image epoch and to its schedule (ResNet-20 182 epochs, VGG-16 200), times its 3 seeds. An extrapolation from
a short run, stated as one: it assumes an epoch costs the same per image at any size (the batches are the same).

Run: `.venv/bin/python benchmarks/cifar10_epoch.py [--images 512] [--epochs 2] [--framework NAME ...]
[--model resnet20|vgg16 ...]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from harness_overhead import child_result
from training_epoch import data_dir

FRAMEWORKS = ("pytorch", "tensorflow", "jax", "pytensor", "theano")
MODELS = ("resnet20", "vgg16")
#: the paper-cifar10 preset: training images per epoch (45,000 of 50,000; 5,000 validate) and seeds
EPOCH_IMAGES, SEEDS = 45_000, 3


def measure(framework: str, model: str, train: dict[str, Any], images: int, epochs: int) -> dict[str, Any]:
    """One framework and model, in this process: the adapter's epoch times on `images` training images, with the
    preset's settings `train` (read by the parent: a toolchain environment may lack the config's pydantic)."""
    from dlcompat.data.batching import to_float
    from dlcompat.data.registry import load_dataset
    from dlcompat.frameworks.base import TrainSettings
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.zoo.registry import build_spec

    data = load_dataset("cifar10", data_dir(), val_fraction=0.0, limit_train=images, limit_test=1, download=False)
    spec = build_spec(model, data.input_shape, data.num_classes)
    adapter = make_adapter(framework, threads=1)
    settings = TrainSettings.from_dict({**train, "epochs": epochs, "lr_milestones": [], "seed": 0})
    x, y = to_float(data.train.x), data.train.y
    history = adapter.train(adapter.build(spec, seed=0), spec, (x, y), (x[:0], y[:0]), settings)
    return {"framework": framework, "model": model, "version": adapter.version(), "images": len(y),
            "epoch_time_s": [float(t) for t in history.epoch_time_s], "schedule_epochs": int(train["epochs"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="training images per epoch (default 512)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs; the first is compilation (default 2)")
    parser.add_argument("--framework", action="append", choices=FRAMEWORKS, help="only these (repeatable)")
    parser.add_argument("--model", action="append", choices=MODELS, help="only these (repeatable)")
    parser.add_argument("--child", nargs=3, metavar=("FRAMEWORK", "MODEL", "SETTINGS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        framework, model, settings = args.child
        print(json.dumps(measure(framework, model, json.loads(settings), args.images, args.epochs)))
        return

    from dlcompat.envs.registry import get_env
    from dlcompat.frameworks.registry import framework_entry
    from dlcompat.study.config import load_preset

    preset = load_preset("paper-cifar10")

    if not (data_dir() / "cifar10").is_dir():
        raise SystemExit(f"CIFAR-10 not found under {data_dir()}: set DLCOMPAT_DATA_DIR to the folder holding cifar10/")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"paper-cifar10 training on this CPU: {args.images} images x {args.epochs} epochs per framework and model, "
          f"1 thread, the preset's settings; load {load} at the start")
    print(f"{'framework':10s} {'model':8s} {'version':>9s}  {'1st epoch':>9s}  {'ms/image':>8s}  "
          f"{'45k epoch':>9s}  {'schedule':>9s}  {'3 seeds':>9s}")
    total_h = 0.0
    for name in args.framework or FRAMEWORKS:
        env = get_env(framework_entry(name).env)
        if not env.exists():
            print(f"{name:10s} skipped: its environment {env.name} is not built (`dlcompat env sync {env.name}`)")
            continue
        for model in args.model or MODELS:
            settings = json.dumps(preset.train.for_model(model))
            command = [str(env.interpreter()), __file__, "--child", name, model, settings,
                       "--images", str(args.images), "--epochs", str(args.epochs)]
            result = child_result(command, name, env=env.worker_environ(1))
            if "skipped" in result:
                print(f"{name:10s} {model:8s} skipped: {result['skipped']}")
                continue
            times = result["epoch_time_s"]
            per_image = float(np.median(times[1:] or times)) / result["images"]
            epoch_h = per_image * EPOCH_IMAGES / 3600
            schedule_h = epoch_h * result["schedule_epochs"]
            total_h += schedule_h * SEEDS
            print(f"{name:10s} {model:8s} {result['version']:>9s}  {times[0]:8.1f}s  {per_image * 1e3:8.2f}  "
                  f"{epoch_h * 60:8.1f}m  {schedule_h:8.1f}h  {schedule_h * SEEDS:8.1f}h")
            sys.stdout.flush()
    print(f"paper-cifar10 training alone: {total_h:,.0f} core-hours, {total_h / 2 / 24:,.1f} days on 2 cores")


if __name__ == "__main__":
    main()
