"""The mobile runtimes as the study runs them: LiteRT, ExecuTorch and Core ML, on LeNet-5 with real MNIST.

- LiteRT feeds a full-integer model integers, quantized with the scale and zero point the model
  declares (a model whose declared input scale is edited is fed accordingly), and dequantizes its
  integer logits the same way.
- The `evaluate` job records, per deployment, accuracy, size, load time, latency per image, peak
  memory and the runtime's facts (delegate, threads, quantization), and `compare` the label flips
  and logit differences against the source model.
- Core ML prediction needs macOS: here its evaluation is recorded as unavailable, never failed.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from tests.converters.mobile_models import mobile_models

from dlcompat.data.registry import save_npz
from dlcompat.runtimes.litert import LiteRTRunner
from dlcompat.store.artifacts import ArtifactStore
from dlcompat.study.jobs import job_function
from dlcompat.study.jobs.base import JobContext, run_job

LATENCY = {"batch_size": 1, "warmup": 2, "warmup_time_s": 0.0, "min_repeats": 20, "min_time_s": 0.0,
           "max_time_s": 5.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory, mnist_small):
    return mobile_models(tmp_path_factory, mnist_small)


@pytest.fixture(scope="module")
def study(models, tmp_path_factory):
    """An artifact store holding the dataset and the source logits, as the study's jobs see them."""
    store = ArtifactStore(tmp_path_factory.mktemp("mobile-store"))
    with store.writing(".npz") as tmp:
        save_npz(models.data, tmp)
        data = {"data": store.put_file(tmp, ".npz"), "input_shape": list(models.data.input_shape),
                "num_classes": models.data.num_classes}
    return store, data


def run(kind, study, params, inputs):
    store, data = study
    cell = {"dataset": "mnist", "model": "lenet5", "framework": "pytorch", "seed": 0, "target": "mobile",
            "variant": "test"}
    ctx = JobContext(kind=kind, params={"cell": cell, **params}, inputs={"data": data, **inputs}, artifacts=store)
    return run_job(job_function(kind), ctx)


def evaluate(study, runtime, path, layout):
    artifact = study[0].put_bytes(path.read_bytes(), "".join(path.suffixes[-2:]))  # put_file would move it
    return run("evaluate", study, {"runtime": runtime, "latency": LATENCY, "threads": 1},
               {"model": {"artifact": artifact, "input_layout": layout}})


def figures(outcome):
    return {m.metric: m for m in outcome.measurements}


def test_litert_feeds_a_full_integer_model_integers_quantized_as_the_model_declares(models):
    deployed = models.deploy("keras.tflite", "int8-full", "tensorflow")
    x = models.x[:8]
    with LiteRTRunner(deployed.path) as runner:
        declared = runner.session.get_input_details()[0]
        assert np.dtype(declared["dtype"]) == np.int8
        scale, zero = declared["quantization"]
        assert runner.input_quantization.scale == pytest.approx(scale) and runner.input_quantization.zero_point == zero
        runner.predictor(x)()
        fed = runner.session.get_tensor(declared["index"])
        assert fed.dtype == np.int8
        expected = np.clip(np.floor(x.astype(np.float64) / scale + 0.5) + zero, -128, 127)
        assert np.array_equal(fed, expected.astype(np.int8))
        out = runner.session.get_output_details()[0]
        raw = runner.session.get_tensor(out["index"])
        o_scale, o_zero = out["quantization"]
        assert np.allclose(runner.infer(x), (raw.astype(np.float32) - o_zero) * o_scale, atol=1e-6)
        assert runner.info()["input_quantization"]["scale"] == pytest.approx(scale)


def test_litert_reads_the_input_scale_from_the_model_file(models, tmp_path):
    """Doubling the scale the model declares doubles the quantization step the runner uses."""
    from tensorflow.lite.tools import flatbuffer_utils

    deployed = models.deploy("keras.tflite", "int8-full", "tensorflow")
    model = flatbuffer_utils.read_model(str(deployed.path))
    graph = model.subgraphs[0]
    tensor = graph.tensors[graph.inputs[0]]
    original = float(tensor.quantization.scale[0])
    tensor.quantization.scale = [original * 2]
    edited = tmp_path / "edited.tflite"
    flatbuffer_utils.write_model(model, str(edited))
    x = models.x[:4]
    with LiteRTRunner(edited) as runner:
        assert runner.input_quantization.scale == pytest.approx(original * 2)
        runner.predictor(x)()
        fed = runner.session.get_tensor(runner.input["index"]).astype(np.int32)
    zero = runner.input_quantization.zero_point
    assert np.array_equal(fed, np.clip(np.floor(x.astype(np.float64) / (original * 2) + 0.5) + zero, -128, 127))


@pytest.mark.parametrize(("edge", "variant", "framework", "runtime"),
                         [("keras.tflite", "int8-full", "tensorflow", "litert"),
                          ("keras.tflite", "fp32", "tensorflow", "litert"),
                          ("torch.pte", "fp32", "pytorch", "executorch")])
def test_evaluate_and_compare_record_every_measurement(models, study, edge, variant, framework, runtime):
    deployed = models.deploy(edge, variant, framework)
    outcome = evaluate(study, runtime, deployed.path, deployed.facts["input_layout"])
    assert outcome.status == "ok", outcome.error
    got = figures(outcome)
    for metric in ("accuracy", "model_size", "load_time", "latency_p50_per_image", "peak_rss", "first_inference"):
        assert metric in got and got[metric].value is not None and got[metric].value > 0, metric
    assert got["model_size"].value == deployed.path.stat().st_size
    latency = got["latency_p50"].method
    assert latency["threads"] == 1 and latency["output_checked"] is True
    assert latency["delegate"] == "XNNPACK"
    if variant == "int8-full":
        assert latency["input_dtype"] == "int8" and latency["input_quantization"]["dtype"] == "int8"
    source_logits = study[0].put_array(models.source(framework).logits)
    compared = run("compare", study, {}, {"source": {"logits": source_logits},
                                          "target": {"logits": outcome.outputs["logits"]}})
    flips = figures(compared)
    assert compared.status == "ok" and flips["label_flip_rate"].value <= (0.03 if "int8" in variant else 0.0)
    assert {"max_abs_logit_diff", "accuracy_change", "top5_agreement"} <= set(flips)


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS: there it is evaluated")
def test_coreml_prediction_is_recorded_unavailable_off_macos(models, study):
    deployed = models.deploy("torch.coreml", "fp16", "pytorch")
    outcome = evaluate(study, "coreml", deployed.path, "NCHW")
    assert outcome.status == "unavailable"
    assert outcome.error.startswith("Core ML prediction needs macOS")
    assert [m.status for m in outcome.measurements] == ["unavailable"]
