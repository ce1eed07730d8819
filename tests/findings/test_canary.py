"""The canary suite: written in ONNX's backend-test layout, loaded by the conformance run like ONNX's own suites, and
each case's expected output (the float64 reference evaluator, cast to float32) matches ONNX Runtime within the
noise a float32 implementation measures on it (the reference evaluator run in float32)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from dlcompat.findings import canary
from dlcompat.findings.conformance import Verdict, group_causes, load_cases, rms, rmse
from dlcompat.metrics.noise import FP32_EPS, K_NOISE

CANARIES = canary.canaries()


def test_the_fragile_operators_are_covered():
    ops = {n.op_type for model, _i, _o in CANARIES.values() for n in model.graph.node}
    assert {"Transpose", "Conv", "Clip", "Pad", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
            "ReduceMean", "Reshape"} <= ops
    ranks = {len(i[0].shape) for name, (_m, i, _o) in CANARIES.items() if name.startswith("transpose")}
    assert {2, 3, 5, 6} <= ranks  # non-4-D transposes
    attrs = {(n.op_type, a.name, a.i if a.type == a.INT else a.s)
             for model, _i, _o in CANARIES.values() for n in model.graph.node for a in n.attribute}
    assert {("Conv", "group", 4), ("Conv", "group", 2), ("Conv", "auto_pad", b"SAME_UPPER"),
            ("Conv", "auto_pad", b"SAME_LOWER"), ("Pad", "mode", b"reflect"), ("Pad", "mode", b"edge")} <= attrs
    symbolic = [name for name, (model, _i, _o) in CANARIES.items()
                if model.graph.input[0].type.tensor_type.shape.dim[0].dim_param]
    assert symbolic == ["dynamic_batch_conv_flatten_gemm", "dynamic_batch_reshape"]


@pytest.mark.parametrize("name", sorted(CANARIES))
def test_expected_output_matches_onnx_runtime_within_the_noise(name):
    model, inputs, expected = CANARIES[name]
    onnx.checker.check_model(model, full_check=True)
    feeds = dict(zip([i.name for i in model.graph.input], inputs, strict=True))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    fp32 = ReferenceEvaluator(model).run(None, feeds)  # a float32 implementation's own rounding: the noise floor
    for got, want, own in zip(session.run(None, feeds), expected, fp32, strict=True):
        assert got.shape == want.shape and want.dtype == np.float32
        floor = max(rmse(np.asarray(own), want), FP32_EPS * rms(want))
        assert rmse(got, want) <= K_NOISE * floor, name


def test_written_in_backend_layout_and_loaded_as_a_suite(tmp_path):
    suite = canary.write_suite(tmp_path)
    folder = suite / "test_relu6_clip"
    assert (folder / "model.onnx").exists()
    data = numpy_helper.to_array(onnx.load_tensor(str(folder / "test_data_set_0" / "output_0.pb")))
    np.testing.assert_array_equal(data, CANARIES["relu6_clip"][2][0])
    assert data.min() == 0 and data.max() == 6  # ReLU6 clips both ends of the seeded draw
    cases, skipped = load_cases((canary.SUITE,), workdir=tmp_path / "run")
    assert sorted(c.name for c in cases) == sorted(f"canary/test_{n}" for n in CANARIES) and not skipped


def test_mismatches_group_by_operator_and_mode(tmp_path):
    """A wrong AveragePool with auto_pad SAME_LOWER and a wrong plain one are two groups; the same mode is one."""
    cases, _ = load_cases((canary.SUITE,), workdir=tmp_path)
    by_name = {c.name: c for c in cases}
    assert by_name["canary/test_avgpool_same_lower"].signature == "AveragePool[auto_pad=SAME_LOWER]"
    assert by_name["canary/test_pad_reflect"].signature == "Pad[mode=reflect]"
    wrong = ["canary/test_avgpool_same_lower", "canary/test_avgpool_asymmetric_pads",
             "canary/test_avgpool_asymmetric_pads_count_include_pad"]
    groups = group_causes([Verdict("tool", name, "mismatch", "output 0: rmse 1") for name in wrong], by_name)
    assert sorted(len(g.verdicts) for g in groups) == [1, 2]
