"""Findings grouped by tool and normalised error, each group with its cells, versions and artifacts."""

from __future__ import annotations

import pytest

from dlcompat.report.document import build_document, run_info
from dlcompat.report.finding_groups import group_findings, layers_in, normalise_error
from dlcompat.report.rows import normalize_rows

from .conftest import CONVERSION_ERROR, WEBGL_ERROR


@pytest.mark.parametrize(("a", "b"), [
    (WEBGL_ERROR, WEBGL_ERROR.replace("[,1,28,28]' but got [1,1,28,28]", "[,28,28,1]' but got [1,28,28,1]")),
    ("no converter path from jax to onnx (needed by onnxruntime)",
     "no converter path from theano to onnx (needed by onnxruntime)"),
    ("failed to read /tmp/job-1/objects/ab/0123456789abcdef.onnx",
     "failed to read /srv/x/objects/cd/fedcba987654.onnx"),
])
def test_errors_that_differ_only_in_numbers_paths_and_names_normalise_alike(a: str, b: str) -> None:
    names = {"jax": "<framework>", "theano": "<framework>"}
    assert normalise_error(a, names) == normalise_error(b, names)


def test_different_errors_stay_apart() -> None:
    assert normalise_error("no path from jax to onnx") != normalise_error("no path from jax to tfjs")


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
