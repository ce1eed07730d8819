"""`compare` judges a derived model's logit changes against the noise floor both runs measured (the localisation
rows of the artifact the cell runs, study/jobs/localize.py): a changed verdict or an output ratio that crossed k is
beyond noise, whatever factor the logits moved by; the fixed factor of 10 is left only where a run measured no floor,
and the output says so."""

from __future__ import annotations

import copy
from typing import Any

from dlcompat.compare.changes import compare_runs
from dlcompat.compare.document import build_comparison_document
from dlcompat.compare.text import change_fields
from tests.findings.conftest import torch_lenet5  # noqa: F401 (a fixture of `localised`)
from tests.report.test_localisation_section import FAULTY, HONEST, localised  # noqa: F401 (a fixture)

from .test_compare import DYNAMO, RUN_A, RUN_B, only, row

FLOOR = ("PyTorch 2.13.0 fp32 re-executions against the fp64 reference, batch 16/1, threads 1/2, oneDNN off; "
         "k = 2.5")


def localisation(ratio: float, verdict: str, *, variant: str = DYNAMO, unit: str = "rmse") -> dict[str, Any]:
    """A `localize` job's row (study/jobs/localize.py) for the ONNX artifact of `variant`."""
    out = row("output_noise_ratio", ratio, unit="x floor", kind="localize", target="onnx", variant=variant,
              verdict=verdict, first_divergent_layer=None if verdict == "within noise" else "conv2",
              fault_type=None if verdict == "within noise" else "weights", k=2.5, floor=FLOOR)
    out["method"]["unit"] = unit
    return out


def logits(value: float, variant: str = DYNAMO, target: str = "onnxruntime") -> dict[str, Any]:
    return row("max_abs_logit_diff", value, kind="compare", target=target, variant=variant)


def test_a_logit_change_within_both_floors_is_noise_whatever_its_factor() -> None:
    change = only(compare_runs(RUN_A, [logits(2e-7), localisation(0.3, "within noise")],
                               RUN_B, [logits(3e-5), localisation(1.1, "within noise")]), "max_abs_logit_diff")
    assert not change.exceeds  # x150: the fixed rule called this a change
    assert change.noise.text == ("within noise → within noise, output 0.3x → 1.1x its floor (k = 2.5; "
                                 "float32 floor)")
    assert change.noise.method == f"measured noise floor (float32 floor: {FLOOR})"


def test_a_changed_verdict_or_a_ratio_across_k_is_beyond_noise_even_for_a_small_factor() -> None:
    change = only(compare_runs(RUN_A, [logits(2e-3), localisation(0.9, "within noise")],
                               RUN_B, [logits(4e-3), localisation(3.0, "exceeds noise")]), "max_abs_logit_diff")
    assert change.exceeds and change.noise.text.startswith("within noise → exceeds noise, output 0.9x → 3x")
    inner = only(compare_runs(RUN_A, [logits(2e-3), localisation(1.0, "exceeds noise")],  # an inner layer exceeds
                              RUN_B, [logits(4e-3), localisation(40.0, "exceeds noise")]), "max_abs_logit_diff")
    assert inner.exceeds  # the output itself crossed k
    ratio = only(compare_runs(RUN_A, [localisation(0.4, "within noise")], RUN_B, [localisation(4.0, "exceeds noise")]),
                 "output_noise_ratio")
    assert ratio.exceeds and "float32 floor" in ratio.noise.method


def test_every_runtime_of_the_artifact_is_judged_by_its_floor_and_the_floor_is_named() -> None:
    wasm = f"{DYNAMO} · wasm"
    steps = "quantisation steps"
    change = only(compare_runs(RUN_A, [logits(1e-6, wasm, "ortweb"), localisation(2.0, "within noise", unit=steps)],
                               RUN_B, [logits(1e-4, wasm, "ortweb"), localisation(2.2, "within noise", unit=steps)]),
                  "max_abs_logit_diff")
    assert not change.exceeds and "int8 floor, in quantisation steps" in change.noise.text


def test_without_a_floor_in_either_run_the_fixed_factor_is_kept_and_said() -> None:
    change = only(compare_runs(RUN_A, [logits(2e-7)], RUN_B, [logits(3e-5), localisation(0.5, "within noise")]),
                  "max_abs_logit_diff")
    assert change.exceeds and change.noise.text == "×10 (no noise floor measured in run A)"
    assert change.noise.method == "ratio tolerance ×10: no noise floor measured"
    assert change_fields(change)["noise"] == "×10 (no noise floor measured in run A)"
    other_chain = only(compare_runs(RUN_A, [logits(2e-7), localisation(0.3, "within noise", variant="other")],
                                    RUN_B, [logits(6e-7), localisation(0.3, "within noise", variant="other")]),
                       "max_abs_logit_diff")
    assert not other_chain.exceeds and "no noise floor measured in run A and run B" in other_chain.noise.text


def test_the_methods_table_states_which_rule_judged_each_change() -> None:
    comparison = compare_runs(RUN_A, [logits(2e-7), localisation(0.3, "within noise"), logits(1e-6, "x")],
                              RUN_B, [logits(3e-5), localisation(4.0, "exceeds noise"), logits(1e-3, "x")])
    document = build_comparison_document(comparison)
    (methods,) = [t for t in document.section("environment").tables if t.id == "noise-methods"]
    applied = {r["metric"]: r["applied"] for r in methods.records()}
    assert f"measured noise floor (float32 floor: {FLOOR}) (1)" in applied["max_abs_logit_diff"]
    assert "ratio tolerance ×10: no noise floor measured (1)" in applied["max_abs_logit_diff"]


def test_real_localisations_a_converter_that_broke_conv2_is_beyond_noise(localised) -> None:  # noqa: F811
    """Run A's honest export and run B's faulty one (conv2 weights scaled) of the same chain, as the real localize
    job stores them, with a logit difference that moved by less than the fixed factor."""
    rows, _ = localised
    before = [copy.deepcopy(r) for r in rows if r["variant"] == HONEST]
    after = [{**copy.deepcopy(r), "variant": HONEST} for r in rows if r["variant"] == FAULTY]

    def lenet5(value: float) -> dict[str, Any]:  # the compare job's row of the cell that runs that artifact
        return {**logits(value, HONEST), "dataset": "mnist", "model": "lenet5"}

    change = only(compare_runs(RUN_A, [*before, lenet5(0.02)], RUN_B, [*after, lenet5(0.15)]), "max_abs_logit_diff")
    assert change.exceeds and change.noise.text.startswith("within noise → exceeds noise, output ")
    assert "float32 floor" in change.noise.text and "fp32 re-executions" in change.noise.method
    same = only(compare_runs(RUN_A, [*before, lenet5(1e-6)], RUN_B, [*copy.deepcopy(before), lenet5(5e-5)]),
                "max_abs_logit_diff")
    assert not same.exceeds  # x50 on the same honest artifact: within its floor in both runs
