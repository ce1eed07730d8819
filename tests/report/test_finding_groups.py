"""Findings grouped by tool and normalised error, each group with its cells, versions and artifacts."""

from __future__ import annotations

import pytest

from dlcompat.report.document import build_document
from dlcompat.report.finding_groups import (
    group_findings,
    group_line,
    group_record,
    layers_in,
    normalise_error,
    ordered_groups,
    underlying_error,
)
from dlcompat.report.rows import normalize_rows
from dlcompat.report.run import run_info

from .conftest import CONVERSION_ERROR, DYNAMO, WEBGL_ERROR, row


@pytest.mark.parametrize(("a", "b"), [
    (WEBGL_ERROR, WEBGL_ERROR.replace("[,1,28,28]' but got [1,1,28,28]", "[,28,28,1]' but got [1,28,28,1]")),
    ("no converter path from jax to onnx (needed by onnxruntime)",
     "no converter path from theano to onnx (needed by onnxruntime)"),
    ("failed to read /tmp/job-1/objects/ab/0123456789abcdef.onnx",
     "failed to read /srv/x/objects/cd/fedcba987654.onnx"),
    # onnx2tf names the layer it failed on with a counter that depends on the model (one cause, seen in the quick study)
    ('ValueError: Exception encountered when calling layer "tf.math.add_3" (type TFOpLambda).',
     'ValueError: Exception encountered when calling layer "tf.math.add_7" (type TFOpLambda).'),
])
def test_errors_that_differ_only_in_numbers_paths_and_names_normalise_alike(a: str, b: str) -> None:
    names = {"jax": "<framework>", "theano": "<framework>"}
    assert normalise_error(a, names) == normalise_error(b, names)


def test_different_errors_stay_apart() -> None:
    assert normalise_error("no path from jax to onnx") != normalise_error("no path from jax to tfjs")
    assert normalise_error("TypeError: int64 is not supported") == "TypeError: int64 is not supported"  # a type name


def test_layers_and_operators_named_in_an_error() -> None:
    assert layers_in(CONVERSION_ERROR) == ("aten::max_pool2d_with_indices",)
    assert layers_in("onnx2tf: Unsupported op: GridSample in node 'grid'") == ("GridSample",)
    assert layers_in("Core ML is part of Apple's operating systems") == ()  # `op` inside a word is no operator


def test_groups_carry_their_cells_versions_and_artifacts(study_run: dict, study_rows: list[dict]) -> None:
    groups = {(g.status, g.tool): g for g in group_findings(normalize_rows(study_rows), run_info(study_run))}
    webgl = groups[("failed", "ONNX Runtime Web · webgl")]
    assert [f.model for f in webgl.members] == ["lenet1", "lenet5"]  # one group, both cells
    assert {"ONNX Runtime Web 1.30.0", "Chromium 156.0.8078.79"} <= set(webgl.versions)  # from the runtime's rows
    assert "main environment: Python 3.11.7, onnxruntime 1.32.0, torch 2.13.0+cpu" in webgl.versions
    # the ONNX file each failed evaluation was given, under the run's artifact root
    assert webgl.artifacts == ["/data/study/artifacts/artifacts/lenet1/onnx.bin",
                               "/data/study/artifacts/artifacts/lenet5/onnx.bin"]
    export = groups[("failed", "torch.onnx (torchscript)")]
    assert export.layers == ("aten::max_pool2d_with_indices",) and export.error == CONVERSION_ERROR
    assert export.artifacts == ["/data/study/artifacts/artifacts/lenet5/pytorch.bin"]  # the trained model it was given
    assert ("failed", "onnx2tf") not in groups  # the move the failed export stopped is that same finding
    flips = groups[("inconsistent", "LiteRT · torch.tflite (int8-full)")]
    assert len(flips.members) == 2 and flips.pattern.startswith("predicted a different label")
    assert any(a.endswith("pytorch-litert-24.npy") for a in flips.artifacts)  # the target's logits
    unavailable = groups[("unavailable", "converter graph")]
    assert unavailable.pattern == "no converter into <framework> exists (none takes ONNX or any other format to it)"


def test_the_findings_section_lists_groups_largest_problems_first(study_run: dict, study_rows: list[dict]) -> None:
    section = build_document(study_run, study_rows).section("findings")
    (table,) = section.tables
    records = table.records()
    assert [r["status"] for r in records] == sorted((r["status"] for r in records),
                                                   key=["failed", "unavailable", "inconsistent"].index)
    assert records[0]["#"] == "G1" and records[0]["tool"] == "ONNX Runtime Web · webgl" and records[0]["cells"] == "2"
    assert section.answer.startswith("9 findings in 6 groups")
    assert "2 cells failed in ONNX Runtime Web · webgl — RuntimeError: ortweb webgl in the page" in section.answer


@pytest.mark.parametrize(("text", "cause"), [
    (WEBGL_ERROR, "Error: input tensor[0] check failed: expected shape '[,1,28,28]' but got [1,1,28,28]"),
    ("RuntimeError: tfjs  in the page, inferring 100 images: Error: Unknown op 'Erf'", "Error: Unknown op 'Erf'"),
    ("ortweb webgpu in Chromium 156.0.8078.129: navigator.gpu.requestAdapter() returned null",
     "navigator.gpu.requestAdapter() returned null"),
    ("TimeoutError: the page did not finish the latency loop within 600 s: the browser was killed",
     "TimeoutError: the page did not finish within 600 s: the browser was killed"),
    ("no adversarial sets to transfer: attack pytorch/lenet1/digits/seed0 with FGSM ended failed: ValueError: bad",
     "ValueError: bad"),
    ("no converter path from theano to onnx (needed by ortweb)", "no converter path from theano to onnx"),
    (CONVERSION_ERROR, CONVERSION_ERROR.splitlines()[-1]),
    ("ValueError: in the page, nothing else", "ValueError: in the page, nothing else"),  # no runtime named: kept
])
def test_the_underlying_error_drops_the_context_a_job_put_around_it(text: str, cause: str) -> None:
    assert underlying_error(text) == cause


def transfer_failure(model: str, error: str) -> dict:
    """A transfer job that failed as a whole on the ONNX Runtime Web webgl model (study/jobs/transfer.py)."""
    return row("transfer", None, model=model, kind="transfer", target="ortweb", variant=f"fgsm · {DYNAMO} · webgl",
               status="failed", error=error, artifact="")


def test_one_cause_hit_by_an_evaluate_and_a_transfer_job_is_one_group(study_rows: list[dict]) -> None:
    transfer_error = WEBGL_ERROR.replace("the latency loop", "inferring 100 images").replace("[1,1,", "[100,1,")
    groups = group_findings(normalize_rows([*study_rows, transfer_failure("lenet1", transfer_error)]))
    webgl = [g for g in groups if "input tensor" in g.pattern]
    assert len(webgl) == 1, [(g.tool, g.pattern) for g in webgl]
    (group,) = webgl
    assert group.tool == "ONNX Runtime Web · webgl" and sorted(group.kinds) == ["evaluate", "transfer"]
    assert sorted((f.model, f.kind) for f in group.members) == [("lenet1", "evaluate"), ("lenet1", "transfer"),
                                                                ("lenet5", "evaluate")]
    assert group.pattern.startswith("Error: input tensor[N] check failed")  # the runner's phase is not part of it
    record = group_record(1, group)
    assert record["count"] == 3 and {c["kind"] for c in record["cells"]} == {"evaluate", "transfer"}


def test_a_transfer_that_lost_its_sets_to_a_failed_attack_joins_the_attacks_group(study_rows: list[dict]) -> None:
    attack_error = "RuntimeError: ART could not compute gradients"
    attack = row("attack", None, model="lenet1", kind="attack", target="pytorch", variant="pgd", status="failed",
                 error=attack_error, artifact="")
    missing = row("transfer", None, model="lenet1", kind="transfer", target="ortweb", variant=f"pgd · {DYNAMO} · wasm",
                  status="failed", method={"attack": "pgd", "route": f"{DYNAMO} · wasm"}, artifact="",
                  error=f"no adversarial sets to transfer: attack pytorch/lenet1/digits/seed0 with PGD ended failed: "
                        f"{attack_error}")
    groups = [g for g in group_findings(normalize_rows([*study_rows, attack, missing])) if "ART" in g.pattern]
    assert [(g.tool, len(g.members), sorted(g.kinds)) for g in groups] == [("pgd", 2, ["attack", "transfer"])]


def test_a_group_reads_as_one_line_in_the_reports_order(study_run: dict, study_rows: list[dict]) -> None:
    groups = ordered_groups(group_findings(normalize_rows(study_rows), run_info(study_run)))
    assert [g.status for g in groups][:2] == ["failed", "failed"] and groups[0].tool == "ONNX Runtime Web · webgl"
    line = group_line(1, groups[0], width=100)
    assert line.startswith("G1   failed") and "2 cells  ONNX Runtime Web · webgl: Error: input tensor" in line
    assert len(line) <= 100 and "\n" not in line
