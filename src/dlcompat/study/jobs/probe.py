"""Job `probe`: load given canonical weights into one framework and report what it computes.

Used by the cross-framework parity check: the same weights and images go to every framework, each in
its own toolchain environment, and the logits, per-layer activations and input gradients (of the loss,
and of one logit per image) come back as artifacts to be compared with NumPy.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from dlcompat.frameworks.registry import make_adapter
from dlcompat.study.jobs.base import JobContext
from dlcompat.zoo.registry import build_spec


def run(ctx: JobContext) -> None:
    p = ctx.params
    probe = ctx.inputs["probe"]
    spec = build_spec(p["model"], tuple(p["input_shape"]), int(p["num_classes"]))
    adapter = make_adapter(p["framework"], threads=ctx.threads)
    with np.load(ctx.artifacts.path(probe["weights"]), allow_pickle=False) as npz:
        weights = {k: npz[k] for k in npz.files}
    x = ctx.artifacts.get_array(probe["images"]).astype(np.float32)
    y = ctx.artifacts.get_array(probe["labels"]).astype(np.int64)
    model = adapter.build(spec, seed=0)
    adapter.set_weights(model, weights)
    logits = adapter.predict(model, x)
    acts = adapter.activations(model, x)
    grad = adapter.loss_gradient(model, x, y)
    classes = np.arange(len(x), dtype=np.int64) % spec.num_classes  # a different logit for each image
    class_grad = adapter.class_gradient(model, x, classes)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"model{adapter.native_suffix}"
        adapter.save(model, path)
        reloaded = adapter.predict(adapter.load(spec, path), x)
    with ctx.artifacts.writing(".npz") as tmp_npz:
        np.savez(tmp_npz, **{name.replace("/", "_"): a for name, a in acts.items()})
        acts_path = ctx.artifacts.put_file(tmp_npz, ".npz")
    round_trip = adapter.get_weights(model)
    ctx.outputs.update(
        logits=ctx.artifacts.put_array(logits), activations=acts_path, gradient=ctx.artifacts.put_array(grad),
        class_gradient=ctx.artifacts.put_array(class_grad),
        layers=list(acts), version=adapter.version(),
        save_load_max_diff=float(np.abs(reloaded - logits).max()),
        weights_round_trip_max_diff=max(float(np.abs(round_trip[k] - weights[k]).max()) for k in weights),
    )
