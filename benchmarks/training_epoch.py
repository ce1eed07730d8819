"""Benchmark: LeNet-5 trained on the full MNIST training set in every framework: test accuracy, epoch time, and
dlcompat's epoch time against an idiomatic bare training loop of the same framework (target <= 1.05).

Per framework, in a fresh process of its toolchain environment (Theano in `theano`, the rest in `main`), one
thread: the same LeNet-5 (the zoo spec built by the adapter, seed 0), the same data (MNIST's 60,000 training
images, `../shared/data` or `DLCOMPAT_DATA_DIR`), SGD with momentum 0.9, lr 0.05, batch 128 (the paper-mnist
preset). Two sides, in rounds whose order alternates so a shared machine's drift hits both alike:

- dlcompat: `adapter.train(...)` for `--epochs` epochs, as the train job calls it; the epoch times are the
  adapter's own `TrainHistory.epoch_time_s` (training batches only: the validation pass is after the clock);
- bare: the framework's idiomatic loop, written out here, on a fresh model built the same way:

  pytorch     for each batch: zero_grad(); loss = CrossEntropyLoss(model(x[idx]), y[idx]); backward(); step()
  tensorflow  model.compile(SGD, SparseCategoricalCrossentropy(from_logits=True)); model.fit(x, y, batch_size,
              shuffle=True)  (Keras' defaults, jit_compile "auto"), epochs timed by a callback
  jax         a jax.jit step over (params, rest, opt_state, x, y) with optax.sgd(momentum) on nnx.split state,
              each batch sliced in NumPy and passed in
  pytensor    pytensor.function([x, y], loss, updates=momentum SGD) over the adapter's symbolic graph
  theano      theano.function([x, y], loss, updates=momentum SGD) over the adapter's symbolic graph

The first epoch of each side includes compilation and tracing; the ratio uses the later epochs ("steady":
the median epoch time from epoch 2 on, over all rounds), and the first epoch is printed apart. Accuracy is
on MNIST's 10,000 test images after each side's last round. Figures are wall-clock: run it on a quiet machine.

Run: `.venv/bin/python benchmarks/training_epoch.py [--epochs 2] [--rounds 2] [--framework NAME ...]
[--limit-train N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from harness_overhead import child_result

FRAMEWORKS = ("pytorch", "tensorflow", "jax", "pytensor", "theano")
REPO = Path(__file__).resolve().parents[1]
SETTINGS = {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0, "batch_size": 128, "seed": 0}


def data_dir() -> Path:
    return Path(os.environ.get("DLCOMPAT_DATA_DIR") or REPO.parent / "shared" / "data")


# -- the bare loops: each trains `model` for `epochs` epochs and returns the epoch times ------------------------


def bare_pytorch(adapter: Any, model: Any, spec: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> list[float]:
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.SGD(model.parameters(), lr=SETTINGS["lr"], momentum=SETTINGS["momentum"])
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    times = []
    for epoch in range(epochs):
        order = torch.from_numpy(np.random.default_rng([SETTINGS["seed"], epoch]).permutation(len(yt)))
        start = time.perf_counter()
        for i in range(0, len(yt), SETTINGS["batch_size"]):
            idx = order[i : i + SETTINGS["batch_size"]]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - start)
    model.eval()
    return times


def bare_tensorflow(adapter: Any, model: Any, spec: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> list[float]:
    import keras

    times: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            times.append(time.perf_counter() - self.start)

    model.compile(optimizer=keras.optimizers.SGD(learning_rate=SETTINGS["lr"], momentum=SETTINGS["momentum"]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y.astype(np.int64), batch_size=SETTINGS["batch_size"], epochs=epochs, shuffle=True, verbose=0,
              callbacks=[EpochTimer()])
    return times


def bare_jax(adapter: Any, model: Any, spec: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> list[float]:
    import jax
    import optax
    from flax import nnx

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(SETTINGS["lr"], momentum=SETTINGS["momentum"])
    opt_state = tx.init(params)
    key = jax.random.key(SETTINGS["seed"])

    @jax.jit
    def step(params: Any, rest: Any, opt_state: Any, xb: Any, yb: Any) -> tuple[Any, Any, Any]:
        def loss_fn(p: Any) -> tuple[Any, Any]:
            net = nnx.merge(graphdef, p, rest)
            logits = net(xb, train=True, dropout_key=key)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
            return loss, nnx.split(net, nnx.Param, ...)[2]

        (_, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_rest, opt_state

    state = [params, rest, opt_state]

    def train(xb: np.ndarray, yb: np.ndarray) -> None:
        state[:] = step(*state, xb, yb)

    times = _bare_loop(train, x, y.astype(np.int32), epochs, sync=lambda: jax.block_until_ready(state[0]))
    nnx.update(model, state[0], state[1])
    return times


def _momentum_sgd(grad_of: Callable[[Any, Any], Any], shared: Callable[[np.ndarray], Any], params: list[Any],
                  loss: Any) -> list[tuple[Any, Any]]:
    """The Theano tutorials' momentum SGD, with torch.optim.SGD's convention: buf = m * buf + g; p -= lr * buf."""
    updates = []
    for p, g in zip(params, grad_of(loss, params), strict=True):
        buf = shared(np.zeros(p.get_value(borrow=True).shape, np.float32))
        new_buf = np.float32(SETTINGS["momentum"]) * buf + g
        updates += [(buf, new_buf), (p, p - np.float32(SETTINGS["lr"]) * new_buf)]
    return updates


def _bare_loop(train: Callable[[np.ndarray, np.ndarray], Any], x: np.ndarray, y: np.ndarray, epochs: int,
               sync: Callable[[], Any] = lambda: None) -> list[float]:
    """`train` on each batch of a seeded permutation, `sync` (wait for the device) before the clock stops."""
    times = []
    for epoch in range(epochs):
        order = np.random.default_rng([SETTINGS["seed"], epoch]).permutation(len(y))
        start = time.perf_counter()
        for i in range(0, len(y), SETTINGS["batch_size"]):
            idx = order[i : i + SETTINGS["batch_size"]]
            train(x[idx], y[idx])
        sync()
        times.append(time.perf_counter() - start)
    return times


def bare_pytensor(adapter: Any, model: Any, spec: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> list[float]:
    import pytensor
    import pytensor.tensor as pt

    from dlcompat.frameworks import pytensor as pytensor_adapter

    xs, ys = pytensor_adapter._inputs(pt, spec)
    builder = pytensor_adapter._GraphBuilder(model, training=True)  # the model: the adapter's graph of the spec
    loss = pytensor_adapter._cross_entropy(builder.forward(xs), ys, spec.num_classes)
    params = [model.params[name] for name in spec.trainable_weight_names()]
    updates = _momentum_sgd(pytensor.grad, pytensor.shared, params, loss) + builder.bn_updates
    train = pytensor.function([xs, ys], loss, updates=updates, mode=pytensor_adapter._mode())
    return _bare_loop(train, np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64), epochs)


def bare_theano(adapter: Any, model: Any, spec: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> list[float]:
    import theano

    from dlcompat.frameworks import theano as theano_adapter

    g = model.activate()  # the model: the adapter's shared variables and symbolic graph of the spec
    xs, ys = theano.tensor.tensor4("x", dtype="float32"), theano.tensor.lvector("y")
    trace = theano_adapter._Trace(training=True, differentiable=True)
    loss = theano_adapter._cross_entropy(theano_adapter._layers(g, spec.layers, xs, trace), ys, spec.num_classes)
    updates = _momentum_sgd(theano.grad, theano.shared, g.trainable(), loss) + trace.updates
    train = theano.function([xs, ys], loss, updates=updates)
    return _bare_loop(train, np.ascontiguousarray(x.transpose(0, 3, 1, 2)), y.astype(np.int64), epochs)


BARE: dict[str, Callable[..., list[float]]] = {
    "pytorch": bare_pytorch, "tensorflow": bare_tensorflow, "jax": bare_jax, "pytensor": bare_pytensor,
    "theano": bare_theano,
}


# -- one framework, in its own process --------------------------------------------------------------------------


def measure_framework(name: str, epochs: int, rounds: int, limit_train: int | None) -> dict[str, Any]:
    from dlcompat.data.batching import to_float
    from dlcompat.data.registry import load_dataset
    from dlcompat.frameworks.base import TrainSettings
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.zoo.registry import build_spec

    data = load_dataset("mnist", data_dir(), val_fraction=0.0, limit_train=limit_train, download=False)
    x, y = to_float(data.train.x), data.train.y
    x_test, y_test = to_float(data.test.x), data.test.y
    spec = build_spec("lenet5", data.input_shape, data.num_classes)
    adapter = make_adapter(name, threads=1)
    settings = TrainSettings.from_dict({**SETTINGS, "epochs": epochs})
    empty = (x[:0], y[:0])
    sides: dict[str, list[list[float]]] = {"dlcompat": [], "bare": []}
    accuracy: dict[str, float] = {}
    for r in range(rounds):
        for side in (("dlcompat", "bare") if r % 2 == 0 else ("bare", "dlcompat")):
            model = adapter.build(spec, seed=0)
            if side == "dlcompat":
                times = adapter.train(model, spec, (x, y), empty, settings).epoch_time_s
            else:
                times = BARE[name](adapter, model, spec, x, y, epochs)
            sides[side].append([float(t) for t in times])
            accuracy[side] = float((adapter.predict(model, x_test).argmax(1) == y_test).mean())
    return {"framework": name, "version": adapter.version(), "images": len(y), "epochs": sides,
            "accuracy": accuracy}


def bare_training(name: str, model: str, epochs: int, seed: int, val_fraction: float) -> dict[str, Any]:
    """One training as a study trains it (the paper-mnist split: `val_fraction` of the training images held out,
    split seed 0), by the framework's bare loop alone: the floor of `benchmarks/paper_mnist.py`."""
    from dlcompat.data.batching import to_float
    from dlcompat.data.registry import load_dataset
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.zoo.registry import build_spec

    data = load_dataset("mnist", data_dir(), val_fraction=val_fraction, split_seed=0, download=False)
    spec = build_spec(model, data.input_shape, data.num_classes)
    adapter = make_adapter(name, threads=1)
    built = adapter.build(spec, seed=seed)
    if name == "tensorflow":  # model.fit's shuffle needs a seed under the op determinism the adapter turns on
        import tensorflow as tf

        tf.keras.utils.set_random_seed(seed)
    times = BARE[name](adapter, built, spec, to_float(data.train.x), data.train.y, epochs)
    return {"framework": name, "model": model, "seed": seed, "images": len(data.train.y),
            "epoch_times": [float(t) for t in times], "version": adapter.version()}


def steady(rounds: list[list[float]]) -> list[float]:
    return [t for epochs in rounds for t in epochs[1:]] or [t for epochs in rounds for t in epochs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per side and round (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating which side goes first")
    parser.add_argument("--framework", action="append", choices=FRAMEWORKS, help="only these (repeatable)")
    parser.add_argument("--limit-train", type=int, help="fewer training images (a quick try; default all 60,000)")
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    # one bare training for benchmarks/paper_mnist.py's floor: --child NAME --bare MODEL --seed S
    parser.add_argument("--bare", choices=("lenet1", "lenet5"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--val-fraction", type=float, default=0.1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child and args.bare:
        print(json.dumps(bare_training(args.child, args.bare, args.epochs, args.seed, args.val_fraction)))
        return
    if args.child:
        print(json.dumps(measure_framework(args.child, args.epochs, args.rounds, args.limit_train)))
        return

    from dlcompat.envs.registry import get_env
    from dlcompat.frameworks.registry import framework_entry

    if not (data_dir() / "mnist").is_dir():
        raise SystemExit(f"MNIST not found under {data_dir()}: set DLCOMPAT_DATA_DIR to the folder holding mnist/")
    print(f"LeNet-5 on MNIST ({args.limit_train or 'all 60,000'} training images), SGD momentum 0.9, lr 0.05, "
          f"batch 128, 1 thread; {args.rounds} rounds of {args.epochs} epochs per side; steady = epochs from the "
          "second on; ratio = dlcompat / bare steady median; target <= 1.05")
    verdicts = []
    for name in args.framework or FRAMEWORKS:
        env = get_env(framework_entry(name).env)
        if not env.exists():
            print(f"{name:10s} skipped: its environment {env.name} is not built (`dlcompat env sync {env.name}`)")
            continue
        limit = ["--limit-train", str(args.limit_train)] if args.limit_train else []
        command = [str(env.interpreter()), __file__, "--child", name, "--epochs", str(args.epochs),
                   "--rounds", str(args.rounds), *limit]
        result = child_result(command, name, env=env.worker_environ(1))
        if "skipped" in result:
            print(f"{name:10s} skipped: {result['skipped']}")
            continue
        ours, bare = steady(result["epochs"]["dlcompat"]), steady(result["epochs"]["bare"])
        ratio = float(np.median(ours) / np.median(bare))
        first = [rounds[0] for rounds in result["epochs"]["dlcompat"]]
        first_bare = [rounds[0] for rounds in result["epochs"]["bare"]]
        print(f"{name:10s} {result['version']:>8s}  accuracy {result['accuracy']['dlcompat']:.4f} "
              f"(bare {result['accuracy']['bare']:.4f})  epoch {np.median(ours):6.2f} s "
              f"[{min(ours):.2f}–{max(ours):.2f}], bare {np.median(bare):6.2f} s [{min(bare):.2f}–{max(bare):.2f}]  "
              f"ratio {ratio:.3f}  | first epoch {np.median(first):.2f} s, bare {np.median(first_bare):.2f} s")
        verdicts.append(f"{name} {ratio:.3f} {'meets' if ratio <= 1.05 else 'MISSES'}")
    if verdicts:
        print("target <= 1.05: " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
