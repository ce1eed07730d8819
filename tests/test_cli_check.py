"""`dlcompat check MODEL --images DATA` as a user meets it: a small Keras classifier no study trained, run through
ONNX Runtime and LiteRT (every precision) on real CIFAR-10 test images; then each bad input is one sentence, exit
code 2, and nothing is written."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from tests.test_cli_localize import dlcompat, one_sentence


@pytest.fixture(scope="module")
def cifar_images(shared_data_dir, tmp_path_factory):
    from dlcompat.data.registry import load_dataset

    data = load_dataset("cifar10", shared_data_dir, limit_train=10, limit_test=64, download=False)
    path = tmp_path_factory.mktemp("images") / "cifar10.npz"
    np.savez(path, x=data.test.x[:64], y=data.test.y[:64])
    return path


@pytest.fixture(scope="module")
def keras_classifier(tmp_path_factory):
    """A small convolutional classifier of 32x32 RGB images (seeded weights, batch norm, global pooling)."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10)(x)
    model = keras.Model(inputs, outputs, name="tiny_cnn")
    path = tmp_path_factory.mktemp("model") / "tiny_cnn.keras"
    model.save(path)
    return path


def _rows(out, metric):
    with sqlite3.connect(out / "results.sqlite") as db:
        return db.execute("select target, variant, value, method from measurements where metric = ?",
                          (metric,)).fetchall()


def test_a_keras_model_is_checked_on_every_route_to_onnx_runtime_and_litert(keras_classifier, cifar_images, tmp_path):
    out = tmp_path / "out"
    args = ("check", str(keras_classifier), "--images", str(cifar_images), "--runtimes", "onnxruntime,litert",
            "--calibration-images", "16", "--out", str(out), "--quiet")
    code, _, err = dlcompat(*args)
    assert code == 0, err
    assert "check tiny_cnn (keras, input NHWC 32x32x3, 10 classes) on 64 images" in err
    routes = {(target, variant) for target, variant, _, _ in _rows(out, "output_noise_ratio")}
    # Keras' own ONNX exporter and tf2onnx, into ONNX Runtime; every LiteRT precision
    assert routes == {("onnxruntime", "keras.onnx (keras)"), ("onnxruntime", "keras.onnx (tf2onnx)")} | {
        ("litert", f"keras.tflite ({p})") for p in ("fp32", "fp16", "int8-dynamic", "int8-full")}
    verdicts = {variant: json.loads(method)["verdict"]
                for _, variant, _, method in _rows(out, "output_noise_ratio")}
    assert verdicts["keras.tflite (fp32)"] == "within noise"
    assert verdicts["keras.tflite (fp16)"] == "within noise"  # against the float16 floor
    assert verdicts["keras.tflite (int8-full)"] == "quantised: not judged"  # compared, but not by a float floor
    accuracy = _rows(out, "accuracy")
    assert len(accuracy) == 7 and all(0.0 <= value <= 1.0 for _, _, value, _ in accuracy)
    assert all("48" in method for _, _, _, method in accuracy)  # 64 images, 16 of them kept for calibration
    report = next(out.glob("reports/*/report.md")).read_text()
    assert "Your model on every runtime" in report and "keras.tflite (int8-full)" in report
    code, _, err = dlcompat(*args)  # a second run finds every job stored
    assert code == 0 and " 0 run (0 ok" in err, err
    # the same model checked elsewhere on ONNX Runtime alone: `compare` sets the two checks side by side
    other = tmp_path / "other"
    code, _, err = dlcompat("check", str(keras_classifier), "--images", str(cifar_images), "--runtimes",
                            "onnxruntime", "--calibration-images", "16", "--out", str(other), "--quiet")
    assert code == 0, err
    code, stdout, err = dlcompat("compare", "latest", "latest", "--out", str(out), "--out-b", str(other))
    assert code == 0, err
    assert "disappeared" in stdout + err  # the LiteRT routes are only in the first check


def test_bad_inputs_are_one_sentence_and_write_nothing(keras_classifier, cifar_images, tmp_path):
    import torch

    out = tmp_path / "out"
    pickle = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), pickle)
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(b"\x08\x07\x12\x04onnx" + bytes(10))
    gray = tmp_path / "gray.npz"
    np.savez(gray, x=np.zeros((4, 32, 32, 1), np.uint8))
    big_labels = tmp_path / "labels.npz"
    np.savez(big_labels, x=np.zeros((4, 32, 32, 3), np.uint8), y=np.array([0, 1, 2, 10]))
    small = tmp_path / "small.npz"
    np.savez(small, x=np.zeros((4, 16, 16, 3), np.uint8))
    images = str(cifar_images)
    for model, data, extra, words in [
        (pickle, images, (), "torch.export"),
        (truncated, images, (), "onnx"),
        (keras_classifier, str(gray), (), "channel"),
        (keras_classifier, str(big_labels), (), "10"),
        (keras_classifier, str(small), (), "--resize"),
        (keras_classifier, images, ("--runtimes", "onnxruntime,warp-drive"), "warp-drive"),
    ]:
        message = one_sentence(("check", str(model), "--images", data, "--out", str(out), *extra))
        assert words in message, message
    assert not out.exists()  # nothing half-written


def test_a_keras_file_with_a_lambda_layer_is_refused_under_safe_mode(cifar_images, tmp_path):
    import keras

    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.Lambda(lambda t: t * 2.0)(inputs)))
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    message = one_sentence(("check", str(path), "--images", str(cifar_images), "--out", str(tmp_path / "o")))
    assert "Lambda" in message
