"""Each migration edge on LeNet-5 with real images, run in its own toolchain environment.

A trained-looking LeNet-5 (canonical random weights) is exported to ONNX by PyTorch's two exporters and
by Keras (tf2onnx), then migrated into PyTorch (the `onnx2torch` edge: a torch.export program) and
TensorFlow (the `onnx2tf` edge: a zipped SavedModel) by `convert` jobs, and run there by `evaluate`
jobs, all in those environments. The edge's file must be of its format and load without unpickling
code; loading it must compute exactly what converting the ONNX file in memory computes (the old path);
a model a converter cannot rebuild must come back as a recorded failure of the convert job with the
converter's error, never a crash. The migrated program's intermediate tensors (its own names) hold PyTorch's
activation of conv1's ReLU, in PyTorch and in the SavedModel's traced graph.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from dlcompat.converters.graph import converter
from dlcompat.converters.keras_onnx import convert as keras_onnx
from dlcompat.converters.onnx_torch import DEFERRED_ONNX, EXPORT_ERROR
from dlcompat.data.registry import save_npz
from dlcompat.envs.registry import get_env, sync_env
from dlcompat.frameworks.registry import make_adapter
from dlcompat.runtimes.base import runtime_entry
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.executors.local import LocalExecutor
from dlcompat.study.request import JobRequest
from dlcompat.zoo.registry import build_spec

from ..frameworks.weights import random_weights

LATENCY = {"batch_size": 1, "warmup": 1, "min_repeats": 3, "min_time_s": 0.0}
CELL = {"dataset": "mnist", "model": "lenet5", "framework": "pytorch", "seed": 0, "variant": "test"}
#: (edge, ONNX export) -> how the edge writes it: a torch.export program, the ONNX file it defers, a SavedModel
ROUTES = {("onnx2torch", "torchscript"): "program", ("onnx2torch", "keras"): "deferred",
          ("onnx2tf", "dynamo"): "savedmodel", ("onnx2tf", "torchscript"): "savedmodel"}
#: run in a migration environment: the edge's file run by its runtime, against the ONNX file converted in memory
_SAME = """
import json, sys
from pathlib import Path
import numpy as np
edge, onnx_path, artifact, layout, images = sys.argv[1:]
x = np.load(images)
if edge == "onnx2torch":
    import torch
    from dlcompat.converters.onnx_torch import to_torch
    from dlcompat.runtimes.onnx2torch import OnnxToTorchRunner as Runner
    with torch.inference_mode():
        fed = np.ascontiguousarray(x if layout == "NHWC" else x.transpose(0, 3, 1, 2))
        in_memory = to_torch(Path(onnx_path))(torch.from_numpy(fed)).numpy()
else:
    import tempfile
    import tensorflow as tf
    from dlcompat.converters.onnx_keras import to_keras
    from dlcompat.runtimes.onnx2tf import OnnxToTfRunner as Runner
    model = to_keras(Path(onnx_path), Path(tempfile.mkdtemp()))
    in_memory = np.asarray(tf.function(lambda t: model(t, training=False))(tf.constant(x)))
with Runner(Path(artifact), input_layout=layout, threads=1) as runner:
    loaded = runner.infer(x)
print(json.dumps({"max_abs_diff": float(np.abs(loaded - in_memory).max())}))
"""
#: run in a migration environment: every intermediate tensor of the model, saved in order, or why there are none
_INTERMEDIATES = """
import importlib, json, sys
from pathlib import Path
import numpy as np
from dlcompat.frameworks.base import Unavailable
module, cls = sys.argv[1].split(":")
runner = getattr(importlib.import_module(module), cls)(Path(sys.argv[2]), input_layout=sys.argv[3], threads=1)
with runner:
    try:
        names = runner.tensor_names()
    except Unavailable as exc:
        print(json.dumps({"unavailable": str(exc)}))
        sys.exit(0)
    values = runner.intermediates(np.load(sys.argv[4]), names)
np.savez(sys.argv[5], *[values[name] for name in names])
print(json.dumps({"names": names}))
"""


def _keras_onnx(store: ArtifactStore, spec, tmp: Path) -> str:
    """LeNet-5 in Keras with the canonical weights, exported by tf2onnx: its ONNX file (NHWC input)."""
    adapter = make_adapter("tensorflow")
    model = adapter.build(spec, 0)
    adapter.set_weights(model, random_weights(spec, 3))
    adapter.save(model, tmp / "lenet5.keras")
    keras_onnx(tmp / "lenet5.keras", tmp / "lenet5.onnx", spec=spec, variant="tf2onnx")
    return store.put_file(tmp / "lenet5.onnx", ".onnx")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, mnist_small):
    for env in ("onnx2torch", "onnx2tf"):
        if not get_env(env).exists():
            sync_env(env)
    store = ArtifactStore(tmp_path_factory.mktemp("edges"))
    spec = build_spec("lenet5", mnist_small.input_shape, 10)
    adapter = make_adapter("pytorch")
    model = adapter.build(spec, 0)
    adapter.set_weights(model, random_weights(spec, 3))
    onnx_files = {}
    for variant in ("dynamo", "torchscript"):
        with store.writing(".onnx") as tmp:
            adapter.export(model, spec, "onnx", tmp, variant=variant)
            onnx_files[variant] = (store.put_file(tmp, ".onnx"), "NCHW")
    onnx_files["keras"] = (_keras_onnx(store, spec, tmp_path_factory.mktemp("keras")), "NHWC")
    with store.writing(".npz") as tmp:
        save_npz(mnist_small, tmp)
        data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(mnist_small.input_shape), "num_classes": 10}
    reference = adapter.predict(model, mnist_small.test.x.astype(np.float32) / 255.0)
    with LocalExecutor(slots=1, log_dir=store.root / "logs") as executor:
        yield store, executor, data, onnx_files, reference


def convert(setup, edge: str, artifact: str, layout: str):
    """The `convert` job of `edge` on the ONNX file `artifact`, in the edge's environment."""
    store, executor, data, _, _ = setup
    request = JobRequest(kind="convert", env=converter(edge).env, threads=1, timeout_s=600,
                         artifacts_root=str(store.root),
                         params={"cell": {**CELL, "target": converter(edge).target}, "converter": edge,
                                 "variant": "", "threads": 1},
                         inputs={"data": data, "model": {"artifact": artifact, "input_layout": layout}})
    return executor.submit(request, lambda _e: None).result()


def evaluate(setup, runtime: str, model: dict):
    store, executor, data, _, _ = setup
    request = JobRequest(kind="evaluate", env=runtime_entry(runtime).env, threads=1, timeout_s=600,
                         artifacts_root=str(store.root),
                         params={"cell": {**CELL, "target": runtime}, "runtime": runtime, "latency": LATENCY},
                         inputs={"data": data, "model": model})
    return executor.submit(request, lambda _e: None).result()


@pytest.fixture(scope="module")
def converted(setup):
    """(edge, ONNX export) -> the outcome of that edge's convert job, for every route of `ROUTES`."""
    return {(edge, export): convert(setup, edge, *setup[3][export]) for edge, export in ROUTES}


@pytest.mark.parametrize(("edge", "export"), list(ROUTES))
def test_edge_migrates_lenet5_with_the_same_predictions(setup, converted, edge, export):
    store, reference = setup[0], setup[4]
    done = converted[(edge, export)]
    assert done.status == "ok", done.error
    assert done.outputs["format"] == converter(edge).target
    assert {m.metric for m in done.measurements} >= {"conversion_time", "converted_size"}
    outcome = evaluate(setup, edge, done.outputs)  # each edge is named as the runtime that runs its file
    assert outcome.status == "ok", outcome.error
    logits = store.get_array(outcome.outputs["logits"])
    assert float(np.abs(logits - reference).max()) < 1e-4
    assert (logits.argmax(1) == reference.argmax(1)).all()
    assert outcome.outputs["runtime"]["runtime"] == edge


@pytest.mark.parametrize(("edge", "export"), list(ROUTES))
def test_the_edge_file_is_its_format_and_holds_no_pickled_code(setup, converted, edge, export):
    done = converted[(edge, export)]
    with zipfile.ZipFile(setup[0].path(done.outputs["artifact"])) as archive:
        names = archive.namelist()
        configs = [json.loads(archive.read(name)) for name in names if name.endswith("_config.json")]
        error = archive.read(EXPORT_ERROR).decode() if EXPORT_ERROR in names else ""
    assert not [name for name in names if name.endswith((".pkl", ".pickle"))]
    how = ROUTES[(edge, export)]
    if how == "program":  # torch.export's archive: the graph as JSON, every weight and constant as raw bytes
        assert [name for name in names if name.endswith("models/model.json")] and configs
        assert not [entry for config in configs for entry in config["config"].values() if entry["use_pickle"]]
        assert done.outputs["program"].startswith("torch.export") and "torch_export_error" not in done.outputs
    elif how == "deferred":  # torch.export cannot export onnx2torch's module of a Keras flatten: recorded
        assert sorted(names) == sorted([DEFERRED_ONNX, EXPORT_ERROR])
        assert done.outputs["torch_export_error"] == error.splitlines()[0][:2000]
        assert "data-dependent" in error
    else:
        assert "saved_model.pb" in names and done.outputs["input_layout"] == "NHWC"


@pytest.mark.parametrize(("edge", "export"), list(ROUTES))
def test_loading_the_edge_file_computes_what_converting_in_memory_computes(setup, converted, mnist_small, tmp_path,
                                                                           edge, export):
    store, onnx_files = setup[0], setup[3]
    done = converted[(edge, export)]
    np.save(tmp_path / "x.npy", mnist_small.test.x[:64].astype(np.float32) / 255.0)
    env = get_env(converter(edge).env)
    ran = subprocess.run([str(env.interpreter()), "-c", _SAME, edge, str(store.path(onnx_files[export][0])),
                          str(store.path(done.outputs["artifact"])), done.outputs["input_layout"],
                          str(tmp_path / "x.npy")],
                         capture_output=True, text=True, timeout=600, env=env.worker_environ(1))
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1])["max_abs_diff"] == 0.0


def test_onnx2torch_rejects_dynamo_onnx_as_a_recorded_conversion_failure(setup):
    outcome = convert(setup, "onnx2torch", *setup[3]["dynamo"])
    assert outcome.status == "failed"
    assert '"allowzero=1" is not implemented' in outcome.error  # onnx2torch 1.5.15: Reshape allowzero=1
    assert [m.metric for m in outcome.measurements] == ["convert"]


def _broken_onnx() -> bytes:
    """An ONNX model of one operator no converter or runtime knows."""
    node = helper.make_node("Frobnicate", ["input"], ["logits"], domain="dlcompat.test")
    graph = helper.make_graph([node], "broken", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT,
                                                                               ["N", 1, 28, 28])],
                              [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 10])])
    broken = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("dlcompat.test", 1)])
    return broken.SerializeToString()


@pytest.mark.parametrize("edge", ["onnx2torch", "onnx2tf"])
def test_an_unsupported_operator_is_a_recorded_conversion_failure(setup, edge):
    store = setup[0]
    outcome = convert(setup, edge, store.put_bytes(_broken_onnx(), ".onnx"), "NCHW")
    assert outcome.status == "failed" and outcome.error
    assert outcome.measurements[-1].status == "failed"


def test_onnxruntime_records_an_unsupported_operator_as_a_failed_evaluation(setup):
    store = setup[0]
    model = {"artifact": store.put_bytes(_broken_onnx(), ".onnx"), "input_layout": "NCHW"}
    outcome = evaluate(setup, "onnxruntime", model)
    assert outcome.status == "failed" and outcome.measurements[-1].status == "failed"


def _intermediates(setup, edge: str, export: str, converted, x: np.ndarray, tmp_path: Path) -> dict:
    store = setup[0]
    done = converted[(edge, export)]
    np.save(tmp_path / "x.npy", x)
    env = get_env(runtime_entry(edge).env)
    ran = subprocess.run([str(env.interpreter()), "-c", _INTERMEDIATES, runtime_entry(edge).runner,
                          str(store.path(done.outputs["artifact"])), done.outputs["input_layout"],
                          str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
                         capture_output=True, text=True, timeout=600, env=env.worker_environ(1))
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("export", ["torchscript", "keras"])
def test_migrated_program_intermediates_hold_the_first_relu(setup, converted, mnist_small, tmp_path, export):
    """The last tensor at conv1's output shape, before pooling changes it, is relu1's output (NCHW in PyTorch)."""
    spec = build_spec("lenet5", mnist_small.input_shape, 10)
    adapter = make_adapter("pytorch")
    model = adapter.build(spec, 0)
    adapter.set_weights(model, random_weights(spec, 3))
    x = mnist_small.test.x[:16].astype(np.float32) / 255.0
    expected = adapter.activations(model, x, ["relu1"])["relu1"]
    names = _intermediates(setup, "onnx2torch", export, converted, x, tmp_path)["names"]
    with np.load(tmp_path / "out.npz") as saved:
        values = [saved[f"arr_{n}"] for n in range(len(names))]
    got = [value for value in values if value.shape == expected.shape][-1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def test_the_savedmodel_intermediates_hold_the_first_relu(setup, converted, mnist_small, tmp_path):
    """The SavedModel's traced graph pruned to its tensors: the last one at conv1's output shape (NHWC in
    TensorFlow) holds relu1's output."""
    spec = build_spec("lenet5", mnist_small.input_shape, 10)
    adapter = make_adapter("pytorch")
    model = adapter.build(spec, 0)
    adapter.set_weights(model, random_weights(spec, 3))
    x = mnist_small.test.x[:16].astype(np.float32) / 255.0
    expected = adapter.activations(model, x, ["relu1"])["relu1"].transpose(0, 2, 3, 1)
    names = _intermediates(setup, "onnx2tf", "dynamo", converted, x, tmp_path)["names"]
    with np.load(tmp_path / "out.npz") as saved:
        values = [saved[f"arr_{n}"] for n in range(len(names))]
    got = [value for value in values if value.shape == expected.shape][-1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
