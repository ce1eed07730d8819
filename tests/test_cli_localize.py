"""`dlcompat localize REFERENCE CANDIDATE --images IMAGES.npz` as a user meets it, on the real LeNet-5 artifacts of
tests/findings/conftest.py (trained on real MNIST): honest files are within noise, an injected fault is found at
its layer with its type, and each bad input is one sentence with exit code 2."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from dlcompat import cli
from tests.findings.artifacts import edited_onnx
from tests.findings.conftest import keras_lenet5_tflite, torch_lenet5  # noqa: F401  (the fixtures, shared)
from tests.findings.test_hop import scale_conv_channel


def dlcompat(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return int(info.value.code or 0), out.getvalue(), err.getvalue()


def one_sentence(args: tuple[str, ...]) -> str:
    code, _, err = dlcompat(*args)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, (code, err)  # one line: never wrapped
    return errors[0]


@pytest.fixture
def images(torch_lenet5, tmp_path):  # noqa: F811
    path = tmp_path / "images.npz"
    np.savez(path, x=np.round(torch_lenet5.x * 255).astype(np.uint8), y=np.zeros(len(torch_lenet5.x), np.int64))
    return str(path)


def test_honest_onnx_and_tflite_are_within_noise(torch_lenet5, keras_lenet5_tflite, images):  # noqa: F811
    for candidate in (torch_lenet5.path, keras_lenet5_tflite.path):
        code, out, err = dlcompat("localize", str(torch_lenet5.path), str(candidate), "--images", images, "--json")
        assert code == 0, err
        data = json.loads(out)
        assert data["verdict"] == "within noise" and data["first_divergent_layer"] is None, data["layers"]
        assert data["layers"][0]["name"] == "conv1" and data["layers"][-1]["name"] == "fc3"


def test_an_injected_fault_is_found_at_its_layer_with_its_type(torch_lenet5, images, tmp_path):  # noqa: F811
    faulty = edited_onnx(torch_lenet5, tmp_path, scale_conv_channel(0, 1.05))
    code, out, err = dlcompat("localize", str(torch_lenet5.path), str(faulty), "--images", images, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["verdict"], data["first_divergent_layer"], data["fault_type"]) == \
        ("exceeds noise", "conv1", "weights")
    assert data["layers"][0]["exceeds"] is True and data["evidence"]
    code, text, _ = dlcompat("localize", str(torch_lenet5.path), str(faulty), "--images", images, "--layers")
    assert code == 0
    assert "first divergent layer: conv1; fault type: weights" in text
    assert "floor: PyTorch" in text and "k = 2.5" in text and text.count("exceeds noise") >= 2


def test_bad_inputs_exit_2_with_one_sentence(torch_lenet5, images, tmp_path):  # noqa: F811
    ref = str(torch_lenet5.path)
    bad = {
        "rank": np.zeros((4, 28, 28), np.uint8),
        "channels": np.zeros((4, 28, 28, 3), np.uint8),
        "size": np.zeros((4, 32, 32, 1), np.uint8),
        "range": np.full((4, 28, 28, 1), 2.0, np.float32),
    }
    expected = {"rank": "four axes", "channels": "28x28x3", "size": "32x32x1", "range": "[0, 1]"}
    for name, x in bad.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, x=x)
        assert expected[name] in one_sentence(("localize", ref, ref, "--images", str(path)))
    weights = tmp_path / "lenet5.npz"  # canonical weights as a study's train job stores them
    np.savez(weights, **torch_lenet5.weights)
    message = one_sentence(("localize", str(weights), ref, "--images", str(tmp_path / "channels.npz")))
    assert "3 channel(s)" in message and "takes 1" in message  # the images, not the model, are wrong
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model at all")
    assert "not a readable" in one_sentence(("localize", ref, str(garbage), "--images", images))
    assert "does not exist" in one_sentence(("localize", ref, str(tmp_path / "none.onnx"), "--images", images))
    assert "does not exist" in one_sentence(("localize", ref, ref, "--images", str(tmp_path / "none.npz")))


def test_mismatched_architectures_exit_2(torch_lenet5, images, tmp_path):  # noqa: F811
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.zoo.registry import build_spec

    adapter = make_adapter("pytorch", threads=1)
    spec = build_spec("lenet1", (28, 28, 1), 10)
    other = tmp_path / "lenet1.onnx"
    adapter.export(adapter.build(spec, seed=0), spec, "onnx", other, variant="torchscript")
    message = one_sentence(("localize", str(torch_lenet5.path), str(other), "--images", images))
    assert "mismatched architectures" in message
