"""What a person reads when a study ends, and `dlcompat findings`: causes, not one line per failed cell.

The database here holds a quick study's kinds of findings, in the shapes its jobs store them: the report
tests' study (a WebGL backend that rejects the batch, a failed TorchScript export, label flips, a move into
JAX no converter makes), the transfer jobs that hit the same WebGL error, and the planner's many
`unavailable` cells of frameworks no converter path leaves (one line each before: 140 for the quick study).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dlcompat import cli
from dlcompat.metrics.record import Measurement
from dlcompat.report.document import build_document
from dlcompat.store.db import ResultStore, database_url
from dlcompat.study.jobs.base import JobOutcome
from dlcompat.study.runner import RunSummary
from tests.report.conftest import DYNAMO, RUN_ID, WEBGL_ERROR, build_run, build_study_rows, row

#: where no converter path leads, and the runtimes that needed one (study/plan.py's `unavailable` jobs)
NO_PATH = {"onnx": ("onnxruntime", "ortweb"), "tfjs": ("tfjs",), "pte": ("executorch",), "coreml": ("coreml",),
           "tflite": ("litert",)}
FRAMEWORKS = ("pytorch", "tensorflow", "jax", "pytensor", "theano")
NO_LANDING = ("jax", "pytensor", "theano")  # frameworks no converter leads into


def unavailable_rows() -> list[dict[str, Any]]:
    out = []
    for model in ("lenet1", "lenet5"):
        for framework in ("jax", "pytensor", "theano"):
            for fmt, runtimes in NO_PATH.items():
                out += [row("unavailable", None, model=model, kind="unavailable", framework=framework, target=runtime,
                            status="unavailable", artifact="",
                            error=f"no converter path from {framework} to {fmt} (needed by {runtime})")
                        for runtime in runtimes]
        for framework in FRAMEWORKS:
            out += [row("unavailable", None, model=model, kind="unavailable", framework=framework, target=target,
                        variant="converter", status="unavailable", artifact="",
                        error=f"no converter into {target} exists (none takes ONNX or any other format to it)")
                    for target in NO_LANDING if target not in (framework, "jax")]  # into JAX: the study's own rows
    return out


def transfer_rows() -> list[dict[str, Any]]:
    """Each model's transfer to the WebGL backend: it fails where the evaluation's latency loop did."""
    error = WEBGL_ERROR.replace("the latency loop", "inferring 100 images").replace("[1,1,", "[100,1,")
    return [row("transfer", None, model=model, kind="transfer", target="ortweb", variant=f"fgsm · {DYNAMO} · webgl",
                status="failed", error=error, artifact="") for model in ("lenet1", "lenet5")]


def write_database(out: Path, rows: list[Mapping[str, Any]]) -> tuple[str, list[str]]:
    """Store `rows` as the jobs that wrote them (one per `job`); the run id, and the finding line of each job that
    did not end ok, as the runner prints it."""
    by_job: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        by_job.setdefault(r["job"], []).append(r)
    store = ResultStore(database_url(out))
    run = build_run()
    store.start_run(RUN_ID, run["name"], run["config_toml"], run["environment"],
                    [hashlib.sha256(job.encode()).hexdigest()[:32] for job in by_job])
    lines = []
    for job, members in by_job.items():
        problem = next((r for r in members if r["status"] != "ok" and r["metric"] == r["kind"]), None)
        status, error = (problem["status"], problem["error"]) if problem else ("ok", "")
        measurements = [Measurement(**{k: r[k] for k in Measurement.__dataclass_fields__ if k in r}) for r in members]
        outcome = JobOutcome(status=status, error=error, measurements=measurements)
        key = hashlib.sha256(job.encode()).hexdigest()[:32]  # a job's key is a hash, its label says what it is
        store.record_job(RUN_ID, key, members[0]["kind"], "main", job, {}, {}, outcome)
        if problem:
            lines.append(f"{job}: {status}: {error.splitlines()[0][:300]}")
    store.finish_run(RUN_ID, "complete", {})
    return RUN_ID, lines


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, RunSummary]:
    """A results folder with the quick study's kinds of findings, and the runner's summary of the run that made it."""
    out = tmp_path / "out"
    out.mkdir()
    run_id, lines = write_database(out, [*build_study_rows(), *unavailable_rows(), *transfer_rows()])
    lost = [f"evaluate jax/lenet{n}/digits/seed0 in tfjs{RunSummary.LOST_MARK}worker killed (signal 9)"
            for n in range(5)]
    failed = sum(": failed: " in line for line in lines)
    summary = RunSummary(run_id, str(out), database_url(out), total=700, ran=700, ok=700 - len(lines) - len(lost),
                         failed=failed, unavailable=len(lines) - failed, lost=len(lost), duration_s=612.3,
                         findings=[*lines, *lost])
    return out, summary


def closing(out: Path, summary: RunSummary, verbose: bool = False) -> list[str]:
    store = ResultStore(database_url(out))
    return cli.closing_lines(summary, cli._finding_groups(store, store.run(summary.run_id), out), out,
                             verbose=verbose)


def test_the_closing_output_counts_and_groups_instead_of_listing_every_cell(study: tuple[Path, RunSummary]) -> None:
    out, summary = study
    assert len(summary.findings) > 60  # one line per job, as the runner used to print them all
    lines = closing(out, summary)
    assert len(lines) + 3 <= 25  # and then report, markdown and database
    assert lines[0].startswith(f"run {RUN_ID}: 700 jobs, 0 from the store, 700 run (") and "5 lost" in lines[0]
    assert lines[1] == ("findings: 63 cells in 11 causes (5 failed, 54 unavailable, 4 changed predictions), failures "
                        "first, largest first:")
    causes = lines[2:2 + cli.SHOWN_CAUSES]
    assert [line.split()[0] for line in causes] == [f"G{n}" for n in range(1, 9)]  # the report's first eight
    assert all(len(line) <= 120 for line in causes)
    # G1: the WebGL error, hit by two evaluations and two transfers: one cause
    assert causes[0].startswith("  G1   failed          4 cells  ONNX Runtime Web · webgl: Error: input tensor[N] chec")
    assert causes[1].startswith("  G2   failed          1 cell   torch.onnx (torchscript): torch.onnx.errors.Unsupp")
    assert causes[2].startswith("  G3   unavailable    18 cells  converter graph: no converter into <framework> exists")
    assert causes[2].endswith("…") and len(causes[2]) == 120  # cut to one line
    assert causes[3] == "  G4   unavailable    12 cells  converter graph: no converter path from <framework> to onnx"
    assert lines[10] == f"  … 3 more causes (4 cells): `dlcompat findings {RUN_ID} --out {out}` lists every cause"
    assert lines[11:] == ["5 jobs lost to infrastructure faults (not stored: run again to retry them):",
                          *(f"  {line}" for line in summary.lost_findings()[:3]),
                          "  … 2 more: run with --verbose to see each"]
    assert not any("finding:" in line for line in lines)


def test_verbose_prints_every_finding_line_too(study: tuple[Path, RunSummary]) -> None:
    out, summary = study
    lines = closing(out, summary, verbose=True)
    assert lines[: len(summary.findings)] == [f"  finding: {line}" for line in summary.findings]
    assert lines[len(summary.findings)] == summary.headline()


def test_no_findings_says_so(tmp_path: Path) -> None:
    lines = cli.closing_lines(RunSummary("r1", str(tmp_path), "sqlite://", total=3, ran=3, ok=3), [], tmp_path)
    assert lines == ["run r1: 3 jobs, 0 from the store, 3 run (3 ok, 0 failed, 0 unavailable), 0 skipped after a "
                     "failure, in 0.0 s",
                     "findings: none (every cell ran, and every moved or deployed model agreed with its source)"]


def dlcompat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlcompat.cli", *args], capture_output=True, text=True, timeout=120)


def test_findings_lists_each_cause_as_the_report_does(study: tuple[Path, RunSummary]) -> None:
    out, _ = study
    listing = dlcompat("findings", "--out", str(out), "--json")
    assert listing.returncode == 0, listing.stderr
    groups = json.loads(listing.stdout)["groups"]
    store = ResultStore(database_url(out))
    (table,) = build_document(cli._report_run(store, RUN_ID), store.rows(RUN_ID)).section("findings").tables
    assert [(g["id"], g["tool"], g["count"]) for g in groups] == [
        (r["#"], r["tool"], int(r["cells"])) for r in table.records()]
    webgl = groups[0]
    assert sorted(webgl["kinds"]) == ["evaluate", "transfer"] and len(webgl["cells"]) == 4

    text = dlcompat("findings", "latest", "--out", str(out))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == (f"run {RUN_ID} (quick): 63 findings in 11 causes (5 failed, 54 unavailable, "
                        "4 changed predictions)")
    assert len(lines) == 1 + len(groups) and lines[1].startswith("G1   failed          4 cells  ONNX Runtime Web")
    assert "Error: input tensor[N] check failed" in lines[1]  # the normalised error, without the job's phase

    verbose = dlcompat("findings", RUN_ID[:4], "--out", str(out), "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert len(verbose.stdout.splitlines()) == 1 + len(groups) + sum(g["count"] for g in groups)
    assert "      lenet1 · PyTorch → ONNX Runtime Web · fgsm · torch.onnx (dynamo) · webgl · seed 0 [transfer]" in (
        verbose.stdout.splitlines())


def test_findings_of_an_unknown_run_exits_2(study: tuple[Path, RunSummary]) -> None:
    out, _ = study
    result = dlcompat("findings", "nope", "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: run 'nope' not found")
