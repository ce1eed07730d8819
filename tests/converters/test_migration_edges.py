"""Each migration edge on LeNet-5 with real images, run in its own toolchain environment.

A trained-looking LeNet-5 (PyTorch, canonical random weights) is exported to ONNX with both
exporters, then migrated into PyTorch (onnx2torch) and TensorFlow (onnx2tf) by `evaluate` jobs that
the local executor runs in those environments. A deliberately broken ONNX model (an operator no
converter knows) must come back as a recorded failure with the converter's error, never a crash. In each
environment, the migrated model's intermediate tensors (its own names) hold PyTorch's activation of conv1's ReLU.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import onnx
import pytest
from onnx import helper

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
RUNNERS = {"onnx2torch": "dlcompat.runtimes.onnx2torch:OnnxToTorchRunner",
           "onnx2tf": "dlcompat.runtimes.onnx2tf:OnnxToTfRunner"}
#: run in a migration environment: every intermediate tensor of the model, saved in order
_INTERMEDIATES = """
import importlib, json, sys
from pathlib import Path
import numpy as np
module, cls = sys.argv[1].split(":")
runner = getattr(importlib.import_module(module), cls)(Path(sys.argv[2]), input_layout="NCHW", threads=1)
with runner:
    names = runner.tensor_names()
    values = runner.intermediates(np.load(sys.argv[3]), names)
np.savez(sys.argv[4], *[values[name] for name in names])
print(json.dumps(names))
"""


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
            onnx_files[variant] = store.put_file(tmp, ".onnx")
    with store.writing(".npz") as tmp:
        save_npz(mnist_small, tmp)
        data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(mnist_small.input_shape), "num_classes": 10}
    reference = adapter.predict(model, mnist_small.test.x.astype(np.float32) / 255.0)
    with LocalExecutor(slots=1, log_dir=store.root / "logs") as executor:
        yield store, executor, data, onnx_files, reference


def evaluate(setup, runtime: str, artifact: str):
    store, executor, data, _, _ = setup
    request = JobRequest(kind="evaluate", env=runtime_entry(runtime).env, threads=1, timeout_s=600,
                         artifacts_root=str(store.root),
                         params={"cell": {"dataset": "mnist", "model": "lenet5", "framework": "pytorch", "seed": 0,
                                          "target": runtime, "variant": "test"}, "runtime": runtime,
                                 "latency": LATENCY},
                         inputs={"data": data, "model": {"artifact": artifact, "input_layout": "NCHW"}})
    return executor.submit(request, lambda _e: None).result()


@pytest.mark.parametrize(("runtime", "variant"), [("onnx2torch", "torchscript"), ("onnx2tf", "dynamo"),
                                                  ("onnx2tf", "torchscript")])
def test_edge_migrates_lenet5_with_the_same_predictions(setup, runtime, variant):
    store, _, _, onnx_files, reference = setup
    outcome = evaluate(setup, runtime, onnx_files[variant])
    assert outcome.status == "ok", outcome.error
    logits = store.get_array(outcome.outputs["logits"])
    assert float(np.abs(logits - reference).max()) < 1e-4
    assert (logits.argmax(1) == reference.argmax(1)).all()
    assert outcome.outputs["runtime"]["runtime"] == runtime


def test_onnx2torch_rejects_dynamo_onnx_as_a_recorded_failure(setup):
    _, _, _, onnx_files, _ = setup
    outcome = evaluate(setup, "onnx2torch", onnx_files["dynamo"])
    assert outcome.status == "failed"
    assert "not implemented" in outcome.error  # onnx2torch 1.5.15: Reshape allowzero=1 / opset versions
    assert [m.metric for m in outcome.measurements] == ["evaluate"]


@pytest.mark.parametrize("runtime", ["onnx2torch", "onnx2tf", "onnxruntime"])
def test_an_unsupported_operator_is_a_recorded_failure(setup, runtime):
    store = setup[0]
    node = helper.make_node("Frobnicate", ["input"], ["logits"], domain="dlcompat.test")
    graph = helper.make_graph([node], "broken", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT,
                                                                               ["N", 1, 28, 28])],
                              [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 10])])
    broken = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                     helper.make_opsetid("dlcompat.test", 1)])
    artifact = store.put_bytes(broken.SerializeToString(), ".onnx")
    outcome = evaluate(setup, runtime, artifact)
    assert outcome.status == "failed" and outcome.error
    assert outcome.measurements[-1].status == "failed"


@pytest.mark.parametrize(("runtime", "variant", "layout"), [("onnx2torch", "torchscript", "NCHW"),
                                                            ("onnx2tf", "dynamo", "NHWC")])
def test_migrated_intermediates_hold_the_first_relu(setup, mnist_small, tmp_path, runtime, variant, layout):
    """The last tensor at conv1's output shape, before pooling changes it, is relu1's output (NHWC in onnx2tf)."""
    store, onnx_files = setup[0], setup[3]
    spec = build_spec("lenet5", mnist_small.input_shape, 10)
    adapter = make_adapter("pytorch")
    model = adapter.build(spec, 0)
    adapter.set_weights(model, random_weights(spec, 3))
    x = mnist_small.test.x[:16].astype(np.float32) / 255.0
    expected = adapter.activations(model, x, ["relu1"])["relu1"]
    np.save(tmp_path / "x.npy", x)
    env = get_env(runtime)
    done = subprocess.run([str(env.interpreter()), "-c", _INTERMEDIATES, RUNNERS[runtime],
                           str(store.path(onnx_files[variant])), str(tmp_path / "x.npy"), str(tmp_path / "out.npz")],
                          capture_output=True, text=True, timeout=600, env=env.worker_environ(1))
    assert done.returncode == 0, done.stderr[-3000:]
    names = json.loads(done.stdout.strip().splitlines()[-1])
    with np.load(tmp_path / "out.npz") as saved:
        values = [saved[f"arr_{n}"] for n in range(len(names))]
    shape = expected.shape if layout == "NCHW" else tuple(expected.transpose(0, 2, 3, 1).shape)
    got = [value for value in values if value.shape == shape][-1]
    got = got if layout == "NCHW" else got.transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
