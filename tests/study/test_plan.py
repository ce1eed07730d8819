"""The planner: the quick study's DAG, stable keys, shared jobs held once."""

from __future__ import annotations

from collections import Counter

from dlcompat.study.config import load_preset, parse_config
from dlcompat.study.plan import build_plan


def test_quick_plan_has_every_cell():
    plan = build_plan(parse_config('models = ["lenet1", "lenet5"]\nframeworks = ["pytorch"]'))
    kinds = Counter(job.kind for job in plan.jobs.values())
    # 1 dataset; per model: reproducibility, train, native evaluation, ONNX export, ORT evaluation, comparison,
    # the trained model's noise floor and the ONNX file's localisation
    assert kinds == {"dataset": 1, "reproduce": 2, "train": 2, "evaluate": 4, "convert": 2, "compare": 2,
                     "noise_floor": 2, "localize": 2}


def test_all_frameworks_expand_and_missing_paths_or_frameworks_become_recorded_cells():
    plan = build_plan(parse_config('models = ["lenet5"]\nframeworks = ["all"]'), unavailable={"theano": "no env"})
    trained = {j.params["cell"]["framework"] for j in plan.jobs.values() if j.kind == "train"}
    assert trained == {"pytorch", "tensorflow", "jax", "pytensor"}
    reasons = {(j.params["cell"]["framework"], j.params["cell"]["target"]): j.params["reason"]
               for j in plan.jobs.values() if j.kind == "unavailable"}
    assert reasons[("theano", "theano")] == "no env"
    assert ("pytensor", "onnxruntime") not in reasons  # its weights move into PyTorch, which exports ONNX
    assert ("tensorflow", "onnxruntime") not in reasons  # Keras exports ONNX itself
    assert ("jax", "onnxruntime") not in reasons  # jax2tf, then tf2onnx
    order = list(plan.jobs)
    for key, job in plan.jobs.items():
        assert all(order.index(dep) < order.index(key) for dep in job.deps.values())


def test_a_framework_without_a_converter_reaches_each_runtime_through_one_weight_transfer():
    plan = build_plan(parse_config('models = ["lenet5"]\nframeworks = ["theano"]\n'
                                   'runtimes = ["onnxruntime", "tfjs", "executorch"]'))
    (moved_pytorch,) = [j for j in plan.jobs.values() if j.kind == "migrate" and j.params["adapter"] == "pytorch"]
    (moved_keras,) = [j for j in plan.jobs.values() if j.kind == "migrate" and j.params["adapter"] == "tensorflow"]
    assert plan.jobs[moved_pytorch.deps["model"]].kind == "train" and moved_keras.env == "main"
    routes = {j.params["cell"]["target"]: j.params["cell"]["variant"] for j in plan.jobs.values()
              if j.kind == "compare"}
    # the shortest chain from the framework registered first: PyTorch for ONNX and ExecuTorch, Keras for TF.js
    assert routes["onnxruntime"] == "weights → pytorch → torch.onnx (dynamo)"
    assert routes["executorch"] == "weights → pytorch → torch.pte (fp32)"
    assert routes["tfjs"] == "weights → tensorflow → keras.tfjs (none) · webgl"  # (the last backend)
    for job in plan.jobs.values():  # each converter reads the moved model; the localisation the trained weights
        if job.kind == "convert" and job.params["cell"]["variant"].startswith("weights → pytorch"):
            assert job.deps["model"] == moved_pytorch.key
        if job.kind == "localize":
            assert plan.jobs[job.deps["model"]].kind == "train"
    nowhere = build_plan(parse_config('models = ["lenet5"]\nframeworks = ["theano"]\nruntimes = ["onnxruntime"]'),
                         unavailable={"pytorch": "no", "tensorflow": "no", "jax": "no"})
    (reason,) = [j.params["reason"] for j in nowhere.jobs.values() if j.kind == "unavailable"]
    assert reason == ("no converter path from theano to onnx, nor from any framework its weights can move into "
                      "(needed by onnxruntime)")


def test_keys_are_stable_and_change_with_what_they_depend_on():
    a = build_plan(load_preset("quick"))
    b = build_plan(load_preset("quick"))
    assert list(a.jobs) == list(b.jobs) and a.run_id == b.run_id
    changed = build_plan(parse_config('name = "quick"\nmodels = ["lenet1", "lenet5"]\n[train]\nepochs = 14'))
    trains = {j.params["cell"]["model"]: k for k, j in a.jobs.items() if j.kind == "train"}
    trains2 = {j.params["cell"]["model"]: k for k, j in changed.jobs.items() if j.kind == "train"}
    assert trains.keys() == trains2.keys() and not set(trains.values()) & set(trains2.values())
    # the dataset job does not depend on training settings, so it is the same job
    assert {k for k, j in a.jobs.items() if j.kind == "dataset"} == {
        k for k, j in changed.jobs.items() if j.kind == "dataset"}


def test_data_dir_and_time_limits_do_not_change_keys():
    config = load_preset("quick")
    assert list(build_plan(config, data_dir="/somewhere").jobs) == list(build_plan(config).jobs)


def test_two_exporter_variants_make_two_chains_and_two_seeds_double_the_cells():
    config = parse_config('models = ["lenet5"]\nseeds = [0, 1]\n[converters]\n"torch.onnx" = ["dynamo", "torchscript"]')
    plan = build_plan(config)
    compares = [j for j in plan.jobs.values() if j.kind == "compare"]
    assert len(compares) == 4
    assert {j.params["cell"]["variant"] for j in compares} == {"torch.onnx (dynamo)", "torch.onnx (torchscript)"}


def test_migration_plans_both_routes_for_every_ordered_pair():
    config = parse_config('models = ["lenet5"]\nframeworks = ["pytorch", "tensorflow", "jax"]\n'
                          'migration = ["weights", "converters"]\n'
                          '[converters]\n"torch.onnx" = ["dynamo", "torchscript"]')
    plan = build_plan(config)
    weights = {(j.params["cell"]["framework"], j.params["cell"]["target"]) for j in plan.jobs.values()
               if j.kind == "evaluate" and j.params["runtime"] == "weights"}
    assert weights == {(a, b) for a in ("pytorch", "tensorflow", "jax") for b in ("pytorch", "tensorflow", "jax")
                       if a != b}
    weight_eval = next(j for j in plan.jobs.values() if j.kind == "evaluate" and j.params["runtime"] == "weights"
                       and j.params["cell"]["target"] == "jax")
    assert weight_eval.params["adapter"] == "jax" and weight_eval.params["artifact_key"] == "weights"
    # tensorflow -> pytorch goes through ONNX into onnx2torch, and so does jax (jax2tf, then tf2onnx)
    via = {(j.params["cell"]["framework"], j.params["cell"]["variant"]) for j in plan.jobs.values()
           if j.kind == "evaluate" and j.params["runtime"] == "onnx2torch"}
    assert ("tensorflow", "keras.onnx (keras) → onnx2torch") in via
    assert ("jax", "jax.onnx (tflite-tf2onnx) → onnx2torch") in via
    jax_targets = {j.params["cell"]["target"] for j in plan.jobs.values() if j.kind == "evaluate"
                   and j.params["cell"]["framework"] == "jax" and j.params["runtime"] != "weights"}
    assert {"pytorch", "tensorflow"} <= jax_targets  # onnx2torch and onnx2tf
    missing = {(j.params["cell"]["framework"], j.params["cell"]["target"]) for j in plan.jobs.values()
               if j.kind == "unavailable"}
    assert missing == {("pytorch", "jax"), ("tensorflow", "jax")}  # nothing converts into JAX
    # shared conversions are planned once: both routes into pytorch from tensorflow reuse one export
    exports = [j for j in plan.jobs.values() if j.kind == "convert" and j.params["cell"]["framework"] == "pytorch"
               and j.params["converter"] == "torch.onnx"]
    assert len(exports) == 2  # dynamo and torchscript, each once


def test_a_converter_migration_converts_in_its_landing_environment_then_evaluates_that_file():
    config = parse_config('models = ["lenet5"]\nframeworks = ["pytorch", "tensorflow", "jax"]\n'
                          'migration = ["converters"]\n[converters]\n"torch.onnx" = ["dynamo", "torchscript"]')
    plan = build_plan(config)
    moves = [j for j in plan.jobs.values() if j.kind == "evaluate" and j.params["runtime"] in ("onnx2torch", "onnx2tf")]
    assert len(moves) == 2 + 1 + 2  # pytorch's two ONNX exports into TF, tensorflow's one into PyTorch, jax's into both
    for move in moves:
        runtime, cell = move.params["runtime"], move.params["cell"]
        landing = plan.jobs[move.deps["model"]]  # the edge named as the runtime, run where the runtime runs
        assert landing.kind == "convert" and landing.params["converter"] == runtime and landing.env == move.env
        assert landing.params["cell"] == {**cell, "target": {"onnx2torch": "pt2", "onnx2tf": "savedmodel"}[runtime]}
        assert plan.jobs[landing.deps["model"]].params["converter"].endswith(".onnx")
        # the cell is the one of the in-memory conversion before: the ONNX route, then the runtime it lands in
        assert cell["variant"] == f"{plan.jobs[landing.deps['model']].params['cell']['variant']} → {runtime}"
        assert cell["target"] == {"onnx2torch": "pytorch", "onnx2tf": "tensorflow"}[runtime] != cell["framework"]
    landings = [j for j in plan.jobs.values() if j.kind == "convert" and j.params["converter"] in ("onnx2torch",
                                                                                                    "onnx2tf")]
    assert len(landings) == len(moves)  # one conversion per move: no ONNX file lands twice in one framework


def test_each_model_trains_with_its_own_settings_where_the_config_gives_them():
    plan = build_plan(load_preset("paper-cifar10"), unavailable={"theano": "no env"})
    settings = {(j.params["cell"]["model"], j.params["train"]["lr_schedule"], j.params["train"]["epochs"])
                for j in plan.jobs.values() if j.kind in ("train", "reproduce")}
    assert settings == {("resnet20", "step", 182), ("vgg16", "cosine", 200)}
    assert all("per_model" not in j.params["train"] for j in plan.jobs.values() if j.kind == "train")
    jax_onnx = {j.params["variant"] for j in plan.jobs.values()
                if j.kind == "convert" and j.params["converter"] == "jax.onnx"}
    assert jax_onnx == {"tflite-tf2onnx", "tf2onnx"}


def test_jobs_that_unblock_the_most_run_first_and_every_job_still_after_its_inputs():
    plan = build_plan(load_preset("quick"))
    order = plan.by_priority(list(plan.jobs))
    assert sorted(order) == sorted(plan.jobs)
    kinds = [plan.jobs[key].kind for key in order]
    assert kinds[0] == "dataset"
    last_train = max(i for i, kind in enumerate(kinds) if kind == "train")
    first_leaf = min(i for i, kind in enumerate(kinds) if kind in ("compare", "reproduce", "unavailable"))
    assert last_train < first_leaf  # every training is asked for before any job that nothing waits on
    position = {key: i for i, key in enumerate(order)}
    for key, job in plan.jobs.items():
        assert all(position[dep] < position[key] for dep in job.deps.values())
