"""The web runtimes in a study: one evaluation per backend, the TF.js path through the `tfjs` environment,
and PyTorch's route to TF.js through a weight transfer into Keras."""

from __future__ import annotations

from collections import Counter

from dlcompat.converters.graph import find_path
from dlcompat.runtimes.base import runtime_entry, runtime_names
from dlcompat.study.config import load_preset, parse_config
from dlcompat.study.plan import build_plan

WEB = 'runtimes = ["onnxruntime", "ortweb", "tfjs"]\nmodels = ["lenet5"]\n'


def test_web_runtimes_are_registered_with_their_backends():
    assert {"ortweb", "tfjs"} <= set(runtime_names())
    assert runtime_entry("ortweb").platform == runtime_entry("tfjs").platform == "web"
    assert runtime_entry("ortweb").variants == ("wasm", "wasm-threads", "webgpu", "webgl")
    assert runtime_entry("tfjs").variants == ("cpu", "wasm", "webgl")
    assert [edge.name for edge in find_path("tensorflow", "tfjs")] == ["keras.tfjs"]
    assert [edge.name for edge in find_path("pytorch", "onnx")] == ["torch.onnx"]


def test_each_backend_is_its_own_evaluation_and_comparison():
    plan = build_plan(parse_config(WEB + 'frameworks = ["pytorch", "tensorflow"]'))
    evaluations = {(j.params["cell"]["framework"], j.params["runtime"], j.params.get("runtime_variant", ""))
                   for j in plan.jobs.values() if j.kind == "evaluate"}
    for framework in ("pytorch", "tensorflow"):
        for variant in ("wasm", "wasm-threads", "webgpu", "webgl"):
            assert (framework, "ortweb", variant) in evaluations
    for variant in ("cpu", "wasm", "webgl"):
        assert ("tensorflow", "tfjs", variant) in evaluations
    compares = [j for j in plan.jobs.values() if j.kind == "compare" and j.params["cell"]["target"] == "tfjs"
                and j.params["cell"]["framework"] == "tensorflow"]
    assert {j.params["cell"]["variant"] for j in compares} == {f"keras.tfjs (none) · {b}" for b in ("cpu", "wasm",
                                                                                                    "webgl")}
    conversions = [j for j in plan.jobs.values() if j.kind == "convert" and j.params["converter"] == "keras.tfjs"
                   and j.params["cell"]["framework"] == "tensorflow"]
    assert len(conversions) == 1 and conversions[0].env == "tfjs"  # one archive, served to every backend


def test_pytorch_reaches_tfjs_through_keras_and_server_runtimes_keep_their_keys():
    plan = build_plan(parse_config(WEB + 'frameworks = ["pytorch"]'))
    assert not [j for j in plan.jobs.values() if j.kind == "unavailable"]
    tfjs = {j.params["cell"]["variant"] for j in plan.jobs.values() if j.kind == "compare"
            and j.params["cell"]["target"] == "tfjs"}
    assert tfjs == {f"weights → tensorflow → keras.tfjs (none) · {b}" for b in ("cpu", "wasm", "webgl")}
    server_only = build_plan(parse_config('runtimes = ["onnxruntime"]\nmodels = ["lenet5"]\nframeworks = ["pytorch"]'))
    assert set(server_only.jobs) <= set(plan.jobs)  # adding web runtimes re-runs nothing that was already done
    kinds = Counter(j.kind for j in plan.jobs.values())
    assert kinds["evaluate"] == 1 + 1 + 4 + 3  # native, onnxruntime, ortweb's four backends, tfjs's three
    assert kinds["migrate"] == 1 and kinds["convert"] == 2  # one ONNX export for both ONNX runtimes, one TF.js
    with_migration = build_plan(parse_config(WEB + 'frameworks = ["pytorch", "tensorflow"]\n'
                                                    'migration = ["converters"]'))
    landing = [j for j in with_migration.jobs.values() if j.kind == "convert" and j.params["converter"] == "onnx2tf"]
    assert len(landing) == 1 and set(plan.jobs) < set(with_migration.jobs)  # the web's jobs keep their keys


def test_quantization_variants_of_the_tfjs_edge_multiply_the_tfjs_cells():
    config = parse_config(WEB + 'frameworks = ["tensorflow"]\n[converters]\n'
                          '"keras.tfjs" = ["none", "uint8", "uint16", "float16"]')
    tfjs = [j for j in build_plan(config).jobs.values() if j.kind == "evaluate" and j.params["runtime"] == "tfjs"]
    assert len(tfjs) == 4 * 3


def test_the_quick_preset_deploys_to_the_web():
    assert {"ortweb", "tfjs"} <= set(load_preset("quick").runtimes)
