"""The study's `noise_floor` and `localize` jobs on real artifacts (LeNet-5 trained on MNIST, its ONNX export): the
floor is stored once as JSON, an honest export is within noise at its output (its layers not compared), a faulty
one is localised to its layer and typed, and a graph that does not align is compared at its output, not failed."""

from __future__ import annotations

import json
import shutil

import numpy as np

from dlcompat.data.registry import save_npz
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.jobs import localize, noise_floor
from dlcompat.study.jobs.base import JobContext
from tests.findings.artifacts import edited_onnx
from tests.findings.test_hop import scale_conv_channel

IMAGES = 16


def _inputs(store, source, mnist_small, tmp_path):
    with store.writing(".npz") as tmp:
        save_npz(mnist_small, tmp)
        data = store.put_file(tmp, ".npz")
    np.savez(tmp_path / "weights.npz", **source.weights)
    return {"data": {"data": data, "input_shape": list(mnist_small.input_shape),
                     "num_classes": mnist_small.num_classes},
            "model": {"weights": store.put_file(tmp_path / "weights.npz", ".npz")}}


def _cell(target):
    return {"dataset": "mnist", "model": "lenet5", "framework": "pytorch", "seed": 0, "target": target,
            "variant": "torch.onnx (dynamo)"}


def test_floor_once_then_each_artifact_localised(torch_lenet5, mnist_small, tmp_path):
    store = ArtifactStore(tmp_path / "artifacts")
    inputs = _inputs(store, torch_lenet5, mnist_small, tmp_path)
    floor_ctx = JobContext("noise_floor", {"cell": _cell("pytorch"), "images": IMAGES}, inputs, store)
    noise_floor.run(floor_ctx)
    assert floor_ctx.measurements == []
    assert json.loads(store.path(floor_ctx.outputs["floor"]).read_text())["method"]["images"] == IMAGES

    def localise(path):
        copy = tmp_path / "copy.onnx"  # put_file moves its file into the store
        shutil.copyfile(path, copy)
        target = {"artifact": store.put_file(copy, ".onnx"), "format": "onnx", "input_layout": "NCHW"}
        ctx = JobContext("localize", {"cell": _cell("onnx"), "images": IMAGES},
                         {**inputs, "floor": floor_ctx.outputs, "target": target}, store)
        localize.run(ctx)
        row, took = ctx.measurements
        assert row.metric == "output_noise_ratio" and row.method["localisation"] == ctx.outputs["localisation"]
        assert took.metric == "localisation_time" and took.unit == "s" and took.value > 0
        return row

    honest = localise(torch_lenet5.path)
    assert honest.method["verdict"] == "within noise" and honest.value <= 2.5
    layers = json.loads(store.path(honest.method["localisation"]).read_text())["layers"]
    assert all("layers not compared" in layer["reason"] for layer in layers[:-1])
    faulty = localise(edited_onnx(torch_lenet5, tmp_path, scale_conv_channel(1, 1.2)))
    assert (faulty.method["verdict"], faulty.method["first_divergent_layer"], faulty.method["fault_type"]) == \
        ("exceeds noise", "conv2", "weights")
    other = localise(_lenet1_onnx(tmp_path))  # another architecture: not aligned, compared at its output
    assert (other.method["verdict"], other.method["first_divergent_layer"]) == ("exceeds noise", "logits")
    assert "mismatched architectures" in other.method["evidence"][0]


def _lenet1_onnx(tmp_path):
    from dlcompat.frameworks.registry import make_adapter
    from dlcompat.zoo.registry import build_spec

    adapter = make_adapter("pytorch", threads=1)
    spec = build_spec("lenet1", (28, 28, 1), 10)
    path = tmp_path / "lenet1.onnx"
    adapter.export(adapter.build(spec, seed=0), spec, "onnx", path, variant="torchscript")
    return path
