"""onnx2tf's SavedModel localised layer by layer, in the `onnx2tf` toolchain environment (Python 3.12): the traced
function's graph (`OnnxToTfRunner.graph_nodes`, read by `findings.tfjs_graph.graph_def_graph`) aligned to the spec,
its tensors from the same function pruned (`OnnxToTfRunner.intermediates`). The trained LeNet-5 of `conftest`
(PyTorch -> ONNX) through the `onnx.savedmodel` edge: the honest SavedModel is within noise at every layer, each in
a tensor of its own (NHWC normalised; the flatten after onnx2tf's NHWC -> NCHW transpose); a ReLU dropped from the
ONNX file before conversion is found at its layer, and a transposed convolution kernel at its layer as *weights*
(the traced function's captured weights read back in the canonical layout)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from dlcompat.findings.align import align_onnx
from tests.findings.faults import onnx_kernel_transposed, onnx_relu_dropped

pytestmark = [pytest.mark.slow]  # onnx2tf's conversion and TensorFlow's start in its environment: about 40 s

LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2", "relu4", "fc3"]

#: in the onnx2tf environment: each ONNX file converted by the edge, then localised against the source
_LOCALISE = """
import json, sys
from pathlib import Path
import numpy as np
from dlcompat.converters.onnx_keras import convert
from dlcompat.findings.hop import localise_hop
from dlcompat.metrics.noise import NoiseFloor
from dlcompat.zoo.registry import build_spec
work = Path(sys.argv[1])
shape, classes = json.loads(sys.argv[2])
spec = build_spec("lenet5", tuple(shape), classes)
weights, x = dict(np.load(work / "weights.npz")), np.load(work / "x.npy")
floor = NoiseFloor.from_dict(json.loads((work / "floor.json").read_text()))
out = {}
for name in sys.argv[3:]:
    target = work / f"{name}.savedmodel.zip"
    convert(work / f"{name}.onnx", target, spec=spec)
    out[name] = localise_hop(spec, weights, x, target, "savedmodel", floor, input_layout="NHWC").to_dict()
print(json.dumps(out))
"""


def test_onnx2tf_savedmodels_are_localised_layer_by_layer(torch_lenet5, mnist_small, tmp_path):
    import shutil

    from dlcompat.envs.registry import get_env

    env = get_env("onnx2tf")
    if not env.exists():
        pytest.skip("the onnx2tf toolchain environment is not built (dlcompat envs sync onnx2tf)")
    source = torch_lenet5
    shutil.copyfile(source.path, tmp_path / "honest.onnx")
    relu2 = align_onnx(source.path, source.spec).tensors()["relu2"]
    onnx_relu_dropped(relu2)(source.path, tmp_path / "faulty.onnx")
    onnx_kernel_transposed(align_onnx(source.path, source.spec).tensors()["conv2"])(source.path,
                                                                                    tmp_path / "transposed.onnx")
    np.savez(tmp_path / "weights.npz", **source.weights)
    np.save(tmp_path / "x.npy", source.x)
    (tmp_path / "floor.json").write_text(json.dumps(source.floor.to_dict()))
    shape = json.dumps([list(mnist_small.input_shape), mnist_small.num_classes])
    done = subprocess.run([str(env.interpreter()), "-c", _LOCALISE, str(tmp_path), shape, "honest", "faulty",
                           "transposed"],
                          capture_output=True, text=True, timeout=400,
                          env={**env.worker_environ(1), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    honest, faulty = results["honest"], results["faulty"]
    judged = {layer["name"]: layer for layer in honest["layers"] if layer["exceeds"] is not None}
    assert list(judged) == LAYERS, honest["layers"]
    assert honest["verdict"] == "within noise" and honest["format"] == "savedmodel", honest["layers"]
    assert judged["flatten"]["candidate_tensor"].endswith("Reshape")
    assert (faulty["verdict"], faulty["first_divergent_layer"]) == ("exceeds noise", "relu2"), faulty["layers"]
    by_name = {layer["name"]: layer for layer in faulty["layers"]}
    assert by_name["conv2"]["exceeds"] is False and "judged as the identity" in by_name["relu2"]["reason"]
    assert faulty["fault_type"] == "operator semantics"  # the same weights, read back from the traced function
    transposed = results["transposed"]
    assert (transposed["first_divergent_layer"], transposed["fault_type"]) == ("conv2", "weights"), transposed
    diffs = transposed["diagnosis"]["parameter_diffs"]["conv2"]
    assert diffs["conv2.weight"] > 0.01 and diffs["conv2.bias"] < 1e-5


def test_a_study_localises_onnx2tf_migrations_in_their_environment():
    from dlcompat.study.config import parse_config
    from dlcompat.study.plan import build_plan

    plan = build_plan(parse_config('models = ["lenet5"]\nframeworks = ["pytorch", "tensorflow"]\n'
                                   'migration = ["converters"]'))
    localize = {(j.env, j.params["cell"]["target"]) for j in plan.jobs.values() if j.kind == "localize"}
    assert ("onnx2tf", "savedmodel") in localize and ("main", "onnx") in localize
