"""Changed predictions and the localisation of their artifact (study/jobs/localize.py): an int8 hop within its
measured floor is not a finding; a hop beyond noise names its first divergent layer and fault type."""

from __future__ import annotations

from dlcompat.report.findings import findings

from .conftest import row

INT8, FP16 = "torch.tflite (int8-full)", "keras.tflite (fp16)"


def _cell(variant: str, verdict: str, layer: str | None = None, fault: str | None = None) -> list[dict]:
    common = {"target": "litert", "variant": variant, "kind": "compare"}
    return [row("label_flips", 2.0, "count", **common, method={"images": 359}),
            row("label_flip_rate", 2 / 359, "fraction", **common),
            row("output_noise_ratio", 0.4 if verdict == "within noise" else 900.0, "x floor", kind="localize",
                target="tflite", variant=variant, method={"verdict": verdict, "first_divergent_layer": layer,
                                                          "fault_type": fault})]


def test_int8_flips_within_the_floor_are_not_findings_and_others_name_their_layer():
    rows = [*_cell(INT8, "within noise"), *_cell(FP16, "exceeds noise", "relu1", "quantisation")]
    found = [f for f in findings(rows) if f.status == "inconsistent"]
    assert [f.variant for f in found] == [FP16]
    assert found[0].error.endswith("Beyond noise from relu1 (quantisation).")
    assert "artifacts/lenet1/tflite.bin" in found[0].artifacts  # the localisation's JSON is linked
    beyond = _cell(INT8, "exceeds noise", "relu2", "quantisation")
    assert [f.variant for f in findings(beyond) if f.status == "inconsistent"] == [INT8]
