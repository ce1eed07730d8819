"""Planning the mobile platform: every framework's model to every variant of LiteRT, ExecuTorch and Core ML.

The planner finds each path through the format graph, after a weight transfer into another framework where the
model's own has no converter (`study.routes`); only the variants that calibrate carry the calibration parameter (so
adding it changed no other job's key).
"""

from __future__ import annotations

from collections import Counter

from dlcompat.converters.graph import converter, find_path
from dlcompat.runtimes.base import runtime_entry
from dlcompat.study.config import load_preset, parse_config
from dlcompat.study.plan import build_plan

MOBILE = ("litert", "executorch", "coreml")


def test_mobile_runtimes_are_registered_for_the_mobile_platform():
    assert {runtime_entry(r).accepts for r in MOBILE} == {"tflite", "pte", "coreml"}
    assert {runtime_entry(r).platform for r in MOBILE} == {"mobile"}
    assert [e.name for e in find_path("tensorflow", "tflite")] == ["keras.tflite"]
    assert [e.name for e in find_path("jax", "tflite")] == ["jax.tflite"]
    assert [e.name for e in find_path("pytorch", "tflite")] == ["torch.tflite"]  # litert-torch, not via ONNX
    assert converter("onnx2tf.tflite").env == "onnx2tf" and converter("keras.tflite").calibrated == ("int8-full",)
    # the onnx2tf environment holds two ONNX edges: LiteRT for phones, and the SavedModel of the migration into TF
    assert converter("onnx2tf").env == "onnx2tf" and converter("onnx2tf").target == "savedmodel"
    assert [e.name for e in find_path("pytorch", "savedmodel")] == ["torch.onnx", "onnx2tf"]


def test_the_quick_preset_plans_every_framework_to_every_mobile_variant():
    plan = build_plan(load_preset("quick"), unavailable={"theano": "no env"})
    evaluated = Counter((j.params["cell"]["framework"], j.params["runtime"]) for j in plan.jobs.values()
                        if j.kind == "evaluate" and j.params["runtime"] in MOBILE)
    unavailable = {(j.params["cell"]["framework"], j.params["cell"]["target"]) for j in plan.jobs.values()
                   if j.kind == "unavailable"}
    models = 2
    assert evaluated[("tensorflow", "litert")] == evaluated[("jax", "litert")] == 4 * models
    assert evaluated[("pytorch", "litert")] == 3 * models  # litert-torch: fp32, int8-dynamic, int8-full
    assert evaluated[("pytorch", "executorch")] == 3 * models
    assert evaluated[("pytorch", "coreml")] == evaluated[("tensorflow", "coreml")] == 3 * models
    assert not unavailable & {(fw, rt) for fw in ("pytorch", "tensorflow", "jax", "pytensor") for rt in MOBILE}
    # a framework without the converter reaches the runtime through a weight transfer into one that has it
    assert evaluated[("tensorflow", "executorch")] == evaluated[("jax", "executorch")] == 3 * models
    assert evaluated[("pytensor", "litert")] == 3 * models  # into PyTorch (registered first), then litert-torch
    variants = {j.params["cell"]["variant"] for j in plan.jobs.values()
                if j.kind == "compare" and j.params["cell"]["framework"] == "tensorflow"
                and j.params["cell"]["target"] == "litert"}
    assert variants == {f"keras.tflite ({v})" for v in ("fp32", "fp16", "int8-dynamic", "int8-full")}
    # every mobile evaluation reads a file of the format its runtime accepts, never a migration edge's
    for job in plan.jobs.values():
        if job.kind == "evaluate" and job.params["runtime"] in MOBILE:
            step, accepts = plan.jobs[job.deps["model"]], runtime_entry(job.params["runtime"]).accepts
            assert step.kind == "convert" and step.params["cell"]["target"] == accepts


def test_only_calibrating_variants_carry_the_calibration_set():
    config = parse_config('models = ["lenet5"]\nframeworks = ["pytorch", "tensorflow"]\n'
                          'runtimes = ["litert", "executorch"]\ncalibration_images = 64\n[converters]\n'
                          '"keras.tflite" = ["fp32", "int8-full"]\n"torch.pte" = ["fp32", "int8"]')
    converts = {(j.params["converter"], j.params["variant"]): j.params for j in build_plan(config).jobs.values()
                if j.kind == "convert"}
    assert converts[("keras.tflite", "int8-full")]["calibration"] == {"images": 64, "seed": 0}
    assert converts[("torch.pte", "int8")]["calibration"]["images"] == 64
    for plain in [("keras.tflite", "fp32"), ("torch.pte", "fp32"), ("torch.tflite", "fp32")]:
        assert "calibration" not in converts[plain], plain
