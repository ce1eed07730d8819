"""Edge tensorflow -> onnx: both Keras' own export and tf2onnx give ONNX that ONNX Runtime runs like Keras."""

from __future__ import annotations

import numpy as np
import pytest

from dlcompat.converters.graph import convert_file, converter
from dlcompat.data.batching import to_float
from dlcompat.frameworks.registry import make_adapter
from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner
from dlcompat.zoo.registry import build_spec

from ..frameworks.weights import random_weights


@pytest.mark.parametrize("variant", ["keras", "tf2onnx"])
def test_keras_model_to_onnx_runs_the_same_in_onnxruntime(tmp_path, mnist_small, variant):
    adapter = make_adapter("tensorflow")
    spec = build_spec("lenet5", mnist_small.input_shape, 10)
    model = adapter.build(spec, 0)
    adapter.set_weights(model, random_weights(spec, 5))
    adapter.save(model, tmp_path / "m.keras")
    facts = convert_file(converter("keras.onnx"), tmp_path / "m.keras", tmp_path / "m.onnx", spec=spec,
                         variant=variant)
    assert facts["input_layout"] == "NHWC" and facts["tool"]
    x = to_float(mnist_small.test.x[:64])
    with OnnxRuntimeRunner(tmp_path / "m.onnx", input_layout="NHWC") as runner:
        got = runner.infer(x)
    np.testing.assert_allclose(got, adapter.predict(model, x), atol=1e-5)
