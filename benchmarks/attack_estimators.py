"""Benchmark: ART's own classifiers against dlcompat's `AdapterClassifier`, for the frameworks ART ships one for.

The attack job attacks a PyTorch model through `art.PyTorchClassifier` and a Keras model through
`art.TensorFlowV2Classifier` (`dlcompat.attacks.art`); every other framework goes through `AdapterClassifier`,
whose gradients are the adapter's own compiled functions. paper-mnist's profile showed ART's TensorFlow
classifier spending 2.6-3.3x the time of ART's PyTorch one on the same attacks. This benchmark measures, for one
LeNet-5 per framework (trained 1 epoch on MNIST's 54,000 training images, SGD as paper-mnist), each of
paper-mnist's attacks on the first `--images` test images through both estimators, in one process, in
alternating order (native first, then adapter first, ...), with the same seed:

- seconds per side (the median over `--rounds`) and the ratio native / adapter (> 1: the adapter is faster);
- for DeepFool, which asks for every class's gradient at each step, also the adapter classifier taking them
  one class at a time (`class_gradient` per class, as before `FrameworkAdapter.class_gradients`): the ratio
  loop / batched is what the batched all-class gradient saves;
- whether the two sides produce the same attack: the success rate and mean L2 of each, and the fraction of
  adversarial images that agree to 1e-5 in every pixel (gradients computed by another graph differ in their last
  bits, so iterative attacks may drift apart on a few images).

The machine's load is printed before and after. Run:
`.venv/bin/python benchmarks/attack_estimators.py [--images 1000] [--rounds 1] [--framework tensorflow pytorch]
[--attack fgsm bim pgd cw-l2 deepfool jsma] [--epsilons 0.3]` (needs DLCOMPAT_DATA_DIR with mnist/).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from quick_study import load
from training_epoch import data_dir

REPO = Path(__file__).resolve().parents[1]


def trained(framework: str) -> tuple[Any, Any, Any, np.ndarray, np.ndarray]:
    """(adapter, model, spec, test images, test labels): LeNet-5 after 1 epoch of paper-mnist's recipe."""
    from dlcompat.data.batching import to_float
    from dlcompat.data.registry import load_dataset
    from dlcompat.frameworks.base import TrainSettings
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.study.config import load_preset
    from dlcompat.zoo.registry import build_spec

    data = load_dataset("mnist", data_dir(), val_fraction=0.1, split_seed=0, download=False)
    spec = build_spec("lenet5", data.input_shape, data.num_classes)
    adapter = make_adapter(framework, threads=1)
    model = adapter.build(spec, seed=0)
    settings = TrainSettings.from_dict({**load_preset("paper-mnist").train.for_model("lenet5"), "epochs": 1})
    empty = (to_float(data.val.x[:0]), data.val.y[:0])
    adapter.train(model, spec, (to_float(data.train.x), data.train.y), empty, settings)
    return adapter, model, spec, to_float(data.test.x), data.test.y.astype(np.int64)


def per_class_loop(adapter: Any, model: Any, spec: Any) -> Any:
    """The adapter classifier, taking DeepFool's all-class gradients one `class_gradient` call per class."""
    from dlcompat.attacks.art import AdapterClassifier

    class PerClassLoop(AdapterClassifier):
        def class_gradient(self, x: np.ndarray, label: Any = None, **kwargs: Any) -> np.ndarray:
            if label is not None:
                return super().class_gradient(x, label, **kwargs)
            return np.stack([super(PerClassLoop, self).class_gradient(x, c)[:, 0] for c in range(self.nb_classes)],
                            axis=1)

    return PerClassLoop(adapter, model, spec)


def attack_once(classifier: Any, attack: str, settings: Any, x: np.ndarray, y: np.ndarray) -> tuple[float, list]:
    from dlcompat.attacks.catalog import attack_entry
    from dlcompat.attacks.generate import generate_adversarial

    start = time.perf_counter()
    batches = generate_adversarial(classifier, attack_entry(attack), x, y, settings, seed=0)
    return time.perf_counter() - start, [b.images for b in batches]


def figures(adapter: Any, model: Any, x: np.ndarray, y: np.ndarray, images: np.ndarray) -> tuple[float, float]:
    """(success rate over correctly classified images, mean L2 of the successful ones)."""
    clean = adapter.predict(model, x).argmax(1) == y
    fooled = clean & (adapter.predict(model, images).argmax(1) != y)
    norms = np.linalg.norm((images - x).reshape(len(x), -1), axis=1)[fooled]
    return float(fooled.sum() / max(clean.sum(), 1)), float(norms.mean()) if len(norms) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--framework", nargs="+", default=["tensorflow", "pytorch"])
    parser.add_argument("--attack", nargs="+", default=["fgsm", "bim", "pgd", "cw-l2", "deepfool", "jsma"])
    parser.add_argument("--epsilons", type=float, nargs="+", help="FGSM/BIM/PGD budgets (default: paper-mnist's)")
    args = parser.parse_args()
    if not (data_dir() / "mnist").is_dir():
        raise SystemExit(f"MNIST not found under {data_dir()}: set DLCOMPAT_DATA_DIR to the folder holding mnist/")
    sys.path.insert(0, str(REPO / "src"))
    from dlcompat.attacks.art import art_classifier
    from dlcompat.attacks.catalog import AttackSettings
    from dlcompat.study.config import load_preset

    settings = AttackSettings.from_dict({**load_preset("paper-mnist").attacks.model_dump(), "images": args.images,
                                         **({"epsilons": args.epsilons} if args.epsilons else {})})
    print(f"{args.images} MNIST test images, LeNet-5 after 1 epoch, one thread, {args.rounds} round(s); "
          f"budgets {settings.epsilons}; load {load()} at the start", flush=True)
    for framework in args.framework:
        adapter, model, spec, x_all, y_all = trained(framework)
        x, y = x_all[: args.images], y_all[: args.images]
        sides = {"native": art_classifier(adapter, model, spec, x[:16], native=True)[0],
                 "adapter": art_classifier(adapter, model, spec, x[:16])[0]}
        print(f"{framework}: native = {type(sides['native']).__name__}, adapter = "
              f"{type(sides['adapter']).__name__}", flush=True)
        for attack in args.attack:
            order = ["native", "adapter", *(["loop"] if attack == "deepfool" else [])]
            seconds: dict[str, list[float]] = {side: [] for side in order}
            images: dict[str, list[np.ndarray]] = {}
            for r in range(args.rounds):
                for side in order if r % 2 == 0 else order[::-1]:
                    classifier = per_class_loop(adapter, model, spec) if side == "loop" else sides[side]
                    took, images[side] = attack_once(classifier, attack, settings, x, y)
                    seconds[side].append(took)
            native, fast = (statistics.median(seconds[s]) for s in ("native", "adapter"))
            loop = (f"  per-class loop {statistics.median(seconds['loop']):.1f} s "
                    f"({statistics.median(seconds['loop']) / fast:.2f}x)" if "loop" in seconds else "")
            same = np.mean([np.all(np.abs(a - b).reshape(len(a), -1) <= 1e-5, axis=1).mean()
                            for a, b in zip(images["native"], images["adapter"], strict=True)])
            rates = {s: figures(adapter, model, x, y, images[s][-1]) for s in images}
            print(f"  {attack:9s} native {native:7.1f} s  adapter {fast:7.1f} s  ratio {native / fast:5.2f}x  "
                  f"same images {same:6.1%}  success/L2 (last budget) native {rates['native'][0]:.3f}/"
                  f"{rates['native'][1]:.3f} adapter {rates['adapter'][0]:.3f}/{rates['adapter'][1]:.3f}{loop}",
                  flush=True)
    print(f"load {load()} at the end")


if __name__ == "__main__":
    main()
