"""ONNX Runtime Web hands back intermediate tensors: a second session in the page, of a copy of the model whose
graph outputs include them, agrees with ONNX Runtime's (`OnnxRuntimeRunner.intermediates`) on every layer the
per-layer alignment finds in the file; the deployed model's logits are untouched; unknown names get ONNX Runtime's
sentence.

Real LeNet-5 (PyTorch, one epoch on real MNIST, torch.onnx dynamo) in Debian's Chromium, the wasm backend.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from dlcompat.findings.align import align_onnx
from dlcompat.runtimes.browser.runner import OrtWebRunner
from dlcompat.runtimes.onnxruntime import OnnxRuntimeRunner
from dlcompat.zoo.registry import build_spec

#: real MNIST test images compared
IMAGES = 64


@pytest.fixture(scope="module")
def aligned(lenet5_onnx, mnist_small) -> dict[str, str]:
    """{canonical layer: ONNX value} for LeNet-5's aligned layers."""
    spec = build_spec("lenet5", mnist_small.input_shape, mnist_small.num_classes)
    tensors = align_onnx(lenet5_onnx["path"], spec).tensors()
    assert len(tensors) >= 5, tensors  # convolutions, pools, dense layers at least
    return tensors


def test_ortweb_intermediates_equal_onnxruntime(lenet5_onnx, mnist_test, aligned):
    x = mnist_test[0][:IMAGES]
    names = list(dict.fromkeys(aligned.values()))
    layout = lenet5_onnx["input_layout"]
    with OnnxRuntimeRunner(lenet5_onnx["path"], input_layout=layout) as ort:
        expected = ort.intermediates(x, names)
    with OrtWebRunner(lenet5_onnx["path"], input_layout=layout, variant="wasm") as runner:
        assert set(names) <= set(runner.tensor_names())
        logits = runner.infer(x)
        got = runner.intermediates(x, names)
        again = runner.intermediates(x[:3], names)  # the model copy's session is kept for the same names
        assert np.array_equal(runner.infer(x), logits)  # the deployed model's session is untouched
    np.testing.assert_allclose(logits, lenet5_onnx["logits"][:IMAGES], rtol=1e-4, atol=1e-4)
    for layer, name in aligned.items():
        assert got[name].shape == expected[name].shape, (layer, name)
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-4, atol=1e-4, err_msg=f"{layer} ({name})")
        np.testing.assert_array_equal(again[name], got[name][:3])


def test_ortweb_intermediates_over_several_page_calls(lenet5_onnx, mnist_test, aligned, monkeypatch):
    """A split larger than one page call's chunk comes back whole, in order."""
    from dlcompat.runtimes.browser import runner as runner_module

    monkeypatch.setattr(runner_module, "INFER_CHUNK", 10)
    x = mnist_test[0][:25]
    name = next(iter(aligned.values()))
    with OnnxRuntimeRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"]) as ort:
        expected = ort.intermediates(x, [name])[name]
    with OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="wasm") as runner:
        got = runner.intermediates(x, [name])[name]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_ortweb_unknown_tensor_names_are_refused(lenet5_onnx, mnist_test):
    with OrtWebRunner(lenet5_onnx["path"], input_layout=lenet5_onnx["input_layout"], variant="wasm") as runner, \
            pytest.raises(KeyError, match=re.escape("ortweb has no tensor 'conv9': see tensor_names()")):
        runner.intermediates(mnist_test[0][:2], ["conv9"])
