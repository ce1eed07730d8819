"""The planner of `dlcompat check`: a user's model file where a study trains (no file is read to plan)."""

from __future__ import annotations

from collections import Counter

from dlcompat.runtimes.base import runtime_names
from dlcompat.study.check_config import reachable_converters
from dlcompat.study.check_plan import build_check_plan as build_plan
from dlcompat.study.config import CheckSource, StudyConfig


def _config(fmt: str, kind: str, layout: str, runtimes: list[str] | None = None, sha: str = "a" * 64) -> StudyConfig:
    chosen = runtimes or runtime_names()
    source = CheckSource(model=f"/m/model.{kind}", model_sha256=sha, format=fmt, kind=kind, model_name="net",
                         input_layout=layout, input_shape=[32, 32, 3], num_classes=10, images="/d/x.npz",
                         images_sha256="b" * 64, scale="symmetric", scale_from="given")
    return StudyConfig(check=source, name="check net", datasets=[], models=[], frameworks=[], seeds=[0],
                       runtimes=chosen, converters=reachable_converters(fmt, chosen), check_reproducibility=False)


def test_an_onnx_check_runs_the_file_itself_in_onnx_runtime_and_converts_it_everywhere_else():
    plan = build_plan(_config("onnx", "onnx", "NCHW"))
    jobs = list(plan.jobs.values())
    kinds = Counter(job.kind for job in jobs)
    assert kinds["images"] == kinds["import"] == kinds["check_floor"] == 1
    assert not {"train", "dataset", "noise_floor", "localize", "attack"} & set(kinds)
    source = [j for j in jobs if j.kind == "evaluate" and j.params["cell"]["target"] == "onnx"]
    assert len(source) == 1 and source[0].params["runtime"] == "onnxruntime"
    # ONNX Runtime itself is the source: no convert job for it, and no second evaluation
    assert not [j for j in jobs if j.kind == "evaluate" and j.params["runtime"] == "onnxruntime"
                and j.params["cell"]["target"] != "onnx"]
    converters = Counter(j.params["converter"] for j in jobs if j.kind == "convert")
    assert converters == {"onnx2tf.tflite": 4, "onnx2torch": 1, "onnx2tf": 1}  # every LiteRT precision
    unavailable = {j.params["cell"]["target"]: j.params["reason"] for j in jobs if j.kind == "unavailable"}
    assert "no converter path from onnx to pte" in unavailable["executorch"]
    assert "no converter path from onnx to tfjs" in unavailable["tfjs"]
    floor = next(k for k, j in plan.jobs.items() if j.kind == "check_floor")
    compares = [j for j in jobs if j.kind == "compare"]
    assert compares and all(j.deps["floor"] == floor for j in compares)
    evaluations = [j for j in jobs if j.kind == "evaluate"]
    assert len(compares) == len(evaluations) - 1  # every derived evaluation, against the source


def test_a_keras_check_reaches_the_browser_and_the_phone_through_its_framework_converters():
    plan = build_plan(_config("tensorflow", "keras", "NHWC", ["litert", "tfjs", "onnxruntime"]))
    converters = Counter((j.params["converter"], j.params["variant"]) for j in plan.jobs.values()
                         if j.kind == "convert")
    assert converters == {("keras.tflite", v): 1 for v in ("fp32", "fp16", "int8-dynamic", "int8-full")} | {
        ("keras.tfjs", v): 1 for v in ("none", "uint8", "uint16", "float16")} | {
        ("keras.onnx", v): 1 for v in ("keras", "tf2onnx")}
    calibrated = [j for j in plan.jobs.values() if j.kind == "convert" and "calibration" in j.params]
    assert [j.params["variant"] for j in calibrated] == ["int8-full"]
    source = next(j for j in plan.jobs.values() if j.kind == "evaluate" and j.params["runtime"] == "native")
    assert source.params["cell"]["framework"] == "tensorflow"


def test_check_keys_follow_the_files_contents():
    a, b = build_plan(_config("onnx", "onnx", "NCHW")), build_plan(_config("onnx", "onnx", "NCHW"))
    assert list(a.jobs) == list(b.jobs)
    changed = build_plan(_config("onnx", "onnx", "NCHW", sha="c" * 64))
    imports = [k for k, j in changed.jobs.items() if j.kind == "import"]
    assert imports[0] not in a.jobs
    images = [k for k, j in changed.jobs.items() if j.kind == "images"]
    assert images[0] in a.jobs  # the same images: the same images job


def test_a_check_config_is_recorded_as_toml_and_reads_back_the_same():
    from dlcompat.study.config import config_to_toml, parse_config

    config = _config("pytorch", "torch.export", "NCHW", ["executorch"])
    assert parse_config(config_to_toml(config)) == config
