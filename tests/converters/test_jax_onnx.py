"""Edge jax -> onnx (jax2tf, then tf2onnx) on LeNet-5 with real digits images, as the study's jobs run it.

A Flax LeNet-5 (canonical random weights) goes through the `convert` job once per variant; a variant
that converts must give ONNX that ONNX Runtime runs like JAX, and one that cannot must come back as a
recorded failure carrying tf2onnx's error, never a crash.
"""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.converters.graph import converter, find_path
from dlcompat.data.batching import to_float
from dlcompat.data.registry import load_dataset, save_npz
from dlcompat.frameworks.registry import make_adapter
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.executors.inline import InlineExecutor
from dlcompat.study.request import JobRequest
from dlcompat.zoo.registry import build_spec

from ..frameworks.weights import random_weights

LATENCY = {"batch_size": 1, "warmup": 1, "min_repeats": 3, "min_time_s": 0.0}

#: variant -> the error text a failing conversion must carry (None: it converts)
CASES = [
    ("tflite-tf2onnx", None),
    ("tf2onnx", "XlaCallModule"),  # jax2tf serializes natively; tf2onnx 1.17 has no handler for the op
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    digits = load_dataset("digits", limit_train=64, limit_test=200)
    store = ArtifactStore(tmp_path_factory.mktemp("jax-onnx"))
    spec = build_spec("lenet5", digits.input_shape, digits.num_classes)
    adapter = make_adapter("jax")
    model = adapter.build(spec, 0)
    adapter.set_weights(model, random_weights(spec, 3))
    with store.writing(adapter.native_suffix) as tmp:
        adapter.save(model, tmp)
        trained = store.put_file(tmp, adapter.native_suffix)
    with store.writing(".npz") as tmp:
        save_npz(digits, tmp)
        data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(digits.input_shape),
                "num_classes": digits.num_classes}
    reference = adapter.predict(model, to_float(digits.test.x))
    return store, InlineExecutor(), data, trained, reference


def _cell(variant: str, target: str) -> dict:
    return {"dataset": "digits", "model": "lenet5", "framework": "jax", "seed": 0, "target": target,
            "variant": f"jax.onnx ({variant})"}


def _run(setup, kind: str, params: dict, inputs: dict):
    store, executor = setup[0], setup[1]
    request = JobRequest(kind=kind, env="main", threads=1, timeout_s=600, artifacts_root=str(store.root),
                         params=params, inputs=inputs)
    return executor.submit(request, lambda _e: None).result()


def test_the_planner_reaches_onnx_from_jax_through_this_edge():
    assert [edge.name for edge in find_path("jax", "onnx")] == ["jax.onnx"]
    assert converter("jax.onnx").variants == tuple(variant for variant, _ in CASES)


@pytest.mark.parametrize(("variant", "error"), CASES)
def test_jax_lenet5_to_onnx_runs_like_jax_or_is_a_recorded_failure(setup, variant, error):
    store, _, data, trained, reference = setup
    converted = _run(setup, "convert", {"cell": _cell(variant, "onnx"), "converter": "jax.onnx", "variant": variant},
                     {"data": data, "model": {"artifact": trained, "format": "jax", "input_layout": "NHWC"}})
    if error is not None:
        assert converted.status == "failed"
        assert error in converted.error and "tf2onnx" in converted.error
        assert [(m.metric, m.status) for m in converted.measurements] == [("convert", "failed")]
        return
    assert converted.status == "ok", converted.error
    assert converted.outputs["input_layout"] == "NHWC" and converted.outputs["format"] == "onnx"
    evaluated = _run(setup, "evaluate", {"cell": _cell(variant, "onnxruntime"), "runtime": "onnxruntime",
                                         "latency": LATENCY},
                     {"data": data, "model": converted.outputs})
    assert evaluated.status == "ok", evaluated.error
    logits = store.get_array(evaluated.outputs["logits"])
    assert logits.shape == reference.shape
    assert float(np.abs(logits - reference).max()) < 1e-4
    assert (logits.argmax(1) == reference.argmax(1)).all()
