"""The command line: `dlcompat run | check | report | export | localize | list | env`.

Exit codes: 0 the study ran (failed cells are findings, counted in the summary); 1 the study could
not complete (or, with --fail-on-findings, it had findings); 2 a usage or input error, explained in
one sentence.
"""

from __future__ import annotations

import functools
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from dlcompat.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0] if __doc__ else "")
env_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Toolchain environments: list and build them.")
app.add_typer(env_app, name="env")
console = Console(stderr=True)
DEFAULT_OUT = Path("dlcompat-out")

OutOption = Annotated[Path, typer.Option("--out", help="Folder of the results database, artifacts and reports.")]


class ExecutorName(StrEnum):
    inline = "inline"
    local = "local"
    ray = "ray"


class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


class Layout(StrEnum):
    NCHW = "NCHW"
    NHWC = "NHWC"


def _fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _open_store(out: Path, database: str | None) -> Any:
    from dlcompat.store.db import ResultStore, database_url

    if database is None and not (out / "results.sqlite").exists():
        _fail(f"no results database in {out}: run `dlcompat run --out {out}` first, or pass the right --out")
    return ResultStore(database or database_url(out))


def _report_run(store: Any, run_id: str | None) -> dict[str, Any]:
    run = store.run(run_id)
    summary = run.get("summary", {})
    statuses = list(store.job_statuses(run["job_keys"]).values())
    jobs = {"total": len(run["job_keys"]), **{s: statuses.count(s) for s in ("ok", "failed", "unavailable")},
            # the last invocation: how many jobs it found stored, how many it skipped after a failure
            "cached": summary.get("cached", 0), "skipped": summary.get("skipped", 0)}
    return {
        "id": run["id"], "name": run["name"], "created": run["created"], "status": run["status"],
        "config_toml": run["config_toml"], "environment": run["environment"], "jobs": jobs,
        "seeds": run["environment"].get("seeds", []), "threads": run["environment"].get("threads", 1),
        "job_environments": store.job_environments(run["job_keys"]),  # the report lists each toolchain's versions
    }


def _report_paths(out: Path, run_id: str) -> tuple[Path, Path]:
    from dlcompat.report.build import HTML_NAME, MARKDOWN_NAME

    return out / "reports" / run_id / HTML_NAME, out / "reports" / run_id / MARKDOWN_NAME


def _write_report(store: Any, run_id: str | None, out: Path, rows: list[dict[str, Any]] | None = None
                  ) -> tuple[Path, Path]:
    """`rows`: the run's rows when the caller already read them (else they are read here)."""
    from dlcompat.report.build import write_report

    run = _report_run(store, run_id)
    run["artifacts"] = str(out / "artifacts")  # where the findings' artifact references resolve
    return write_report(run, store.rows(run["id"]) if rows is None else rows, out / "reports" / run["id"])


def _finding_groups(store: Any, run: dict[str, Any], out: Path, rows: list[dict[str, Any]] | None = None
                    ) -> list[Any]:
    """The run's findings grouped by cause, numbered as the report numbers them (G1 is the first); `rows` as for
    `_write_report`."""
    from dlcompat.report.finding_groups import group_findings, ordered_groups
    from dlcompat.report.rows import normalize_rows
    from dlcompat.report.run import run_info

    info = run_info({**run, "artifacts": str(out / "artifacts")})
    return ordered_groups(group_findings(normalize_rows(store.rows(run["id"]) if rows is None else rows), info))


#: the closing output of `dlcompat run` names at most this many causes (the report's first), one line each
SHOWN_CAUSES = 8
#: ... and at most this many lost jobs, one line each
SHOWN_LOST = 3


def _status_words(groups: list[Any]) -> str:
    from dlcompat.report.finding_groups import status_counts

    nouns = {"inconsistent": "changed predictions"}
    return ", ".join(f"{n} {nouns.get(status, status)}" for status, n in status_counts(groups).items())


def _findings_command(run_id: str, out: Path, database: str | None) -> str:
    where = f" --out {out}" if out != DEFAULT_OUT else ""
    return f"dlcompat findings {run_id}{where}{f' --database {database}' if database else ''}"


def closing_lines(summary: Any, groups: list[Any], out: Path, database: str | None = None,
                  verbose: bool = False) -> list[str]:
    """What `dlcompat run` says when it is done (before where the report and database are): this invocation's
    jobs by status, the run's findings by status, and its first causes in the report's order (failures, then
    unavailable cells, then changed predictions; the most cells first in each), one line each, numbered as in
    the report; with `verbose`, every finding line of this invocation first."""
    from dlcompat.report.finding_groups import group_line

    lines = [f"  finding: {line}" for line in summary.findings] if verbose else []
    lines.append(summary.headline())
    if not groups:
        lines.append("findings: none (every cell ran, and every moved or deployed model agreed with its source)")
    else:
        cells = sum(len(g.members) for g in groups)
        shown, rest = groups[:SHOWN_CAUSES], groups[SHOWN_CAUSES:]  # the report's order: failures first, largest first
        lines.append(f"findings: {cells} cells in {len(groups)} causes ({_status_words(groups)})"
                     f"{', failures first, largest first:' if rest else ':'}")
        lines += [f"  {group_line(number, group, width=118)}" for number, group in enumerate(shown, start=1)]
        hint = _findings_command(summary.run_id, out, database)
        if rest:
            lines.append(f"  … {len(rest)} more causes ({sum(len(g.members) for g in rest)} cells): `{hint}` "
                         "lists every cause")
        elif not verbose:
            lines.append(f"  `{hint} --verbose` lists the cells of each")
    lost = summary.lost_findings()
    if lost and not verbose:
        lines.append(f"{len(lost)} jobs lost to infrastructure faults (not stored: run again to retry them):")
        lines += [f"  {line[:200]}" for line in lost[:SHOWN_LOST]]
        if len(lost) > SHOWN_LOST:
            lines.append(f"  … {len(lost) - SHOWN_LOST} more: run with --verbose to see each")
    return lines


@app.command()
def run(
    config: Annotated[Path | None, typer.Argument(help="A study config (TOML). Default: the `quick` preset.")] = None,
    preset: Annotated[
        str | None, typer.Option(help="A built-in study: quick, paper-mnist, cifar10-short, paper-cifar10.")
    ] = None,
    out: OutOption = DEFAULT_OUT,
    data_dir: Annotated[
        Path | None, typer.Option(help="Existing dataset files (else DLCOMPAT_DATA_DIR, else download).")
    ] = None,
    executor: Annotated[
        ExecutorName, typer.Option(help="inline (one process, for debugging), local processes, or a Ray cluster.")
    ] = ExecutorName.local,
    jobs: Annotated[
        int | None, typer.Option(min=1, help="Jobs run at once (local: default one per core, each job pinned to cores "
                                             "of its own; ray: default the cluster's CPUs).")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="Ray cluster to run on (host:port, or auto); default: a local Ray instance.")
    ] = None,
    artifacts: Annotated[
        str | None, typer.Option(help="Artifact store: a folder or an fsspec URL every node reaches (s3://…, gs://…, "
                                      "file:///mount/…); default: OUT/artifacts.")
    ] = None,
    database: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL of the results database (default: SQLite in --out).")
    ] = None,
    fail_on_findings: Annotated[bool, typer.Option(help="Exit 1 when any cell failed.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Print one line per failed or unavailable job, not only their causes.")
    ] = False,
) -> None:
    """Run a study: train, convert, deploy and measure every cell; resume what a previous run left."""
    from dlcompat.study.config import load_config, load_preset
    from dlcompat.study.progress import ProgressView
    from dlcompat.study.runner import run_study

    if config is not None and preset is not None:
        _fail("pass either a config file or --preset, not both")
    study = load_config(config) if config is not None else load_preset(preset or "quick")
    if data_dir is not None and not data_dir.is_dir():
        _fail(f"--data-dir {data_dir} is not a folder: pass the folder that holds the dataset files")
    if address is not None and executor is not ExecutorName.ray:
        _fail("--address names a Ray cluster: add --executor ray")
    console.print(f"study [bold]{study.name}[/]: results in {out}/", highlight=False)
    view = ProgressView(enabled=not quiet, console=console)
    try:
        summary = run_study(study, out, data_dir=str(data_dir.absolute()) if data_dir else None,
                            executor=executor.value, jobs=jobs, view=view, database=database, address=address,
                            artifacts=artifacts)
    except UserError:
        raise
    except KeyboardInterrupt:
        console.print("interrupted: run the same command again to resume")
        raise typer.Exit(1) from None
    _finish(summary, out, database, verbose)
    if fail_on_findings and (summary.failed or summary.skipped or summary.lost):
        raise typer.Exit(1)


def _finish(summary: Any, out: Path, database: str | None, verbose: bool) -> None:
    """After a study or a check: its report (unless no job ran), the closing lines, and where everything is."""
    store = _open_store(out, database)
    html, markdown = _report_paths(out, summary.run_id)
    unchanged = not summary.ran and html.is_file() and markdown.is_file()  # every job was stored: same figures
    rows = store.rows(summary.run_id)  # read once, for the report and the closing output's causes
    if not unchanged:
        html, markdown = _write_report(store, summary.run_id, out, rows)
    groups = _finding_groups(store, store.run(summary.run_id), out, rows)
    for line in closing_lines(summary, groups, out, database, verbose):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    typer.echo(f"report:   {html}{' (unchanged: no job ran; `dlcompat report` rebuilds it)' if unchanged else ''}")
    typer.echo(f"markdown: {markdown}")
    typer.echo(f"database: {summary.database}")


def _torchscript_shape(model: Path, images: Path) -> tuple[int, int, int] | None:
    """A TorchScript file does not record its input's size: it is taken from the images (an .npz's x)."""
    from dlcompat.data.user_images import read_npz
    from dlcompat.errors import DataError
    from dlcompat.frameworks.imported import file_kind

    if file_kind(model)[1] != "torchscript":
        return None
    if not images.is_file():
        raise DataError(f"{model} is TorchScript, which does not record its input's size: pass the images as an "
                        ".npz whose x (N, H, W, C) is at the model's size")
    x = read_npz(images).get("x")
    if x is None or x.ndim != 4:
        raise DataError(f"--images {images} holds no array x (N, H, W, C): save them with numpy.savez(path, x=...)")
    return (int(x.shape[1]), int(x.shape[2]), int(x.shape[3]))


class Scale(StrEnum):
    unit = "0-1"
    byte = "0-255"
    symmetric = "symmetric"
    imagenet = "imagenet"


@app.command()
def check(
    model: Annotated[Path, typer.Argument(help="The model: .onnx, .keras, .tflite, or a PyTorch .pt2 (torch.export) "
                                               "or TorchScript file.")],
    images: Annotated[Path, typer.Option(help="An .npz (x: N,H,W,C images, optional y: labels) or a folder with one "
                                              "subfolder of images per class.")],
    labels: Annotated[Path | None, typer.Option(help="Labels, one per image (.npy or .txt), instead of the "
                                                     "images' own.")] = None,
    runtimes: Annotated[str | None, typer.Option(help="Comma-separated runtimes (default: every one; "
                                                      "`dlcompat list` names them).")] = None,
    layout: Annotated[Layout | None, typer.Option(help="The model's input layout, where the model does not "
                                                       "say.")] = None,
    scale: Annotated[Scale | None, typer.Option(help="How pixels become the model's input: 0-1 (x/255, the "
                                                     "default), 0-255, symmetric ([-1, 1]) or imagenet "
                                                     "(mean/std).")] = None,
    resize: Annotated[bool, typer.Option(help="Resize the images bilinearly to the model's input size.")] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N images.")] = None,
    calibration_images: Annotated[int, typer.Option(min=1, help="Images (the first ones, at most a quarter) that "
                                                                "calibrate int8 conversions instead of being "
                                                                "evaluated.")] = 32,
    out: OutOption = DEFAULT_OUT,
    jobs: Annotated[int | None, typer.Option(min=1, help="Jobs run at once (default: one per core).")] = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the results database (default: SQLite "
                                                      "in --out).")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress display.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="One line per failed job.")] = False,
) -> None:
    """Check your own model: convert it to every runtime reachable from its format, run each on your images, and
    measure what each route loses (agreement or accuracy, latency, size, memory) against its measured noise floor."""
    from dlcompat.data.user_images import read_user_images
    from dlcompat.frameworks.imported import inspect_model
    from dlcompat.runtimes.base import runtime_names
    from dlcompat.study.check_config import check_config
    from dlcompat.study.progress import ProgressView
    from dlcompat.study.runner import run_study

    chosen = [r.strip() for r in runtimes.split(",") if r.strip()] if runtimes else None
    unknown = [r for r in chosen or [] if r not in runtime_names()]
    if unknown:
        _fail(f"--runtimes names {', '.join(unknown)}, which dlcompat does not know; choose from "
              f"{', '.join(runtime_names())}")
    imported = inspect_model(model, layout.value if layout else None, _torchscript_shape(model, images))
    read = read_user_images(images, shape=imported.input_shape, num_classes=imported.num_classes, resize=resize,
                            labels=labels, limit=limit)  # every problem with the images is found before any job
    config = check_config(imported, images, read.sha256, runtimes=chosen, scale=scale.value if scale else None,
                          resize=resize, labels=labels, limit=limit, calibration_images=calibration_images)
    how = "given" if scale else "the default: pass --scale if the model takes 0-255, [-1, 1] or ImageNet's mean/std"
    console.print(f"check [bold]{imported.name}[/] ({imported.kind}, input {imported.input_layout} "
                  f"{'x'.join(map(str, imported.input_shape))}, {imported.num_classes} classes) on "
                  f"{len(read.x)} images, scaled {config.check.scale} ({how}): results in {out}/",  # type: ignore[union-attr]
                  highlight=False, soft_wrap=True)
    view = ProgressView(enabled=not quiet, console=console)
    try:
        summary = run_study(config, out, jobs=jobs, view=view, database=database)
    except KeyboardInterrupt:
        console.print("interrupted: run the same command again to resume")
        raise typer.Exit(1) from None
    _finish(summary, out, database, verbose)


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or a unique prefix, or `latest`).")] = "latest",
    out: OutOption = DEFAULT_OUT,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the results database.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
) -> None:
    """A running or stopped study's state, from its database: jobs done, failed, pending, and running now."""
    import json

    from dlcompat.study.status import describe, study_state

    state = study_state(_open_store(out, database), run_id)
    if as_json:
        typer.echo(json.dumps(state, indent=2, default=str))
    else:
        Console().print(describe(state), highlight=False)


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or a unique prefix, or `latest`).")] = "latest",
    out: OutOption = DEFAULT_OUT,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the results database.")] = None,
) -> None:
    """Write the HTML report and its Markdown twin for a run."""
    store = _open_store(out, database)
    html, markdown = _write_report(store, run_id, out)
    typer.echo(f"report:   {html}")
    typer.echo(f"markdown: {markdown}")


@app.command()
def findings(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or a unique prefix, or `latest`).")] = "latest",
    out: OutOption = DEFAULT_OUT,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the results database.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every cause and its cells as JSON.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="List the cells under each cause.")] = False,
    folder: Annotated[Path | None, typer.Argument(metavar="[DIR]", help="With RUN `verify`: the reproducer "
                                                  "folder, or a folder of them.")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="Write a reproducer folder per failure cause "
                                                "whose failing model is ONNX into this folder.")] = None,
    newest: Annotated[bool, typer.Option(help="`verify`: also check the tool's newest release.")] = True,
    venvs: Annotated[Path | None, typer.Option("--venvs", help="`verify`: keep the fresh environments here "
                                               "(default: a temporary folder, removed after).")] = None,
) -> None:
    """A run's findings, one line per cause (same tool, same underlying error, whichever job hit it): status,
    tool, normalised error and how many cells it hit, numbered G1, G2, … as in the report.

    `dlcompat findings verify DIR` runs each reproducer folder at or in DIR in a fresh virtual environment built
    from its requirements.txt, then against the tool's newest release."""
    import json

    from dlcompat.report.finding_groups import cell_label, group_line, group_record

    if run_id == "verify":
        _verify_reproducers(folder, newest, venvs)
        return
    if folder is not None:
        _fail(f"unexpected argument {folder}: only `dlcompat findings verify DIR` takes a folder")
    store = _open_store(out, database)
    run = store.run(run_id)
    groups = _finding_groups(store, run, out)
    if export is not None:
        _export_reproducers(groups, export, out / "reproducers" / f"{run['id']}.json")
    if as_json:
        typer.echo(json.dumps({"run": run["id"], "name": run["name"], "groups": [
            group_record(number, group) for number, group in enumerate(groups, start=1)]}, indent=2, default=str))
        return
    cells = sum(len(g.members) for g in groups)
    typer.echo(f"run {run['id']} ({run['name']}): {cells} findings in {len(groups)} causes"
               f"{f' ({_status_words(groups)})' if groups else ''}")
    for number, group in enumerate(groups, start=1):
        typer.echo(group_line(number, group, width=None, normalised=True))
        if verbose:
            for finding in group.members:
                typer.echo(f"      {cell_label(finding)} [{finding.kind}]")


def _verify_reproducers(folder: Path | None, newest: bool, venvs: Path | None) -> None:
    """`dlcompat findings verify DIR`: exits 1 when a reproducer does not reproduce in its fresh environment."""
    from dlcompat.findings.verify import verify_all

    if folder is None:
        _fail("`dlcompat findings verify` needs the reproducer folder (or a folder of them): findings verify DIR")
    if not folder.is_dir():
        _fail(f"no folder {folder}: pass a reproducer folder or a folder of them")
    results = verify_all(folder, newest=newest, venvs=venvs, log=typer.echo)
    failed = [r for r in results if not r.reproduces]
    typer.echo(f"{len(results) - len(failed)} of {len(results)} reproducers reproduce in a fresh environment")
    if failed:
        raise typer.Exit(1)


def _export_reproducers(groups: list[Any], export: Path, index: Path) -> None:
    """`findings RUN --export DIR`: the failed causes whose failing model is ONNX, as reproducer folders; their
    catalogue also goes to `index` (OUT/reproducers/RUN.json), where the run's report finds it."""
    from dlcompat.findings.study_export import StudyCause, export_study_causes
    from dlcompat.report.finding_groups import cell_label

    causes = [StudyCause(f"G{number} {group.tool}", group.tool, group.cause, list(group.artifacts),
                         [cell_label(f) for f in group.members])
              for number, group in enumerate(groups, start=1) if group.status == "failed"]
    problems = export_study_causes(causes, export, say=lambda m: console.print(m, highlight=False, markup=False),
                                   index=index)
    console.print(f"{len(problems)} reproducer folders written to {export}", highlight=False, markup=False)


@app.command()
def conformance(
    routes: Annotated[str, typer.Option(help="Comma-separated routes: onnxruntime, onnx2torch, onnx2tf, "
                                        "onnxruntime-web (wasm, in headless Chromium).")
                      ] = "onnxruntime,onnx2torch,onnx2tf,onnxruntime-web",
    suites: Annotated[str, typer.Option(help="Comma-separated folders of onnx/backend/test/data, and `canary` "
                                        "(dlcompat's cases of operators users report as fragile).")
                      ] = "simple,pytorch-converted,pytorch-operator,node,canary",
    export: Annotated[Path | None, typer.Option("--export", help="Write a reproducer folder per cause here.")
                      ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N cases (a quick look).", min=1)] = None,
    match: Annotated[str, typer.Option(help="Only the cases whose name holds this text (`sequence`, `canary/`).")
                     ] = "",
) -> None:
    """ONNX's backend test cases through each ONNX-consuming route, judged against ONNX Runtime's measured noise;
    failures grouped by cause, each reduced to its smallest model and (with --export) written as a reproducer."""
    from dlcompat.findings.conformance_run import ROUTES, catalogue_line, run_conformance

    chosen = [r.strip() for r in routes.split(",") if r.strip()]
    unknown = [r for r in chosen if r not in ROUTES]
    if unknown or not chosen:
        _fail(f"unknown route {', '.join(unknown) or '(none)'}: choose from {', '.join(ROUTES)}")
    result = run_conformance(chosen, [s.strip() for s in suites.split(",") if s.strip()], export, limit=limit,
                             match=match, say=lambda m: console.print(m, highlight=False, markup=False))
    for route, counts in result.counts().items():
        timeouts = f", {counts['timeout']} past the time limit (not judged)" if counts["timeout"] else ""
        typer.echo(f"{route}: {counts['pass']} pass, {counts['error']} errors, {counts['mismatch']} mismatches"
                   f"{timeouts} of {result.cases} cases")
    typer.echo(f"{len(result.problems)} causes:")
    for problem in result.problems:
        typer.echo(f"  {catalogue_line(problem)}")


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="The baseline run: id, unique prefix, or `latest`.")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="The run compared with it (looked up in --out-b).")],
    out: OutOption = DEFAULT_OUT,
    out_b: Annotated[Path | None, typer.Option("--out-b", help="Folder of RUN_B's results (default: --out).")] = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of RUN_A's results database.")] = None,
    database_b: Annotated[
        str | None, typer.Option("--database-b", help="SQLAlchemy URL of RUN_B's results database (default: "
                                                      "--database, or the one in --out-b).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Folder for compare.html and compare.md (default: OUT/reports/compare-A-B).")
    ] = None,
    pool_seeds: Annotated[
        bool, typer.Option(help="Pool each measurement over its run's seeds even when both runs used the same "
                                "seeds (they are pooled anyway when the seeds differ).")
    ] = False,
    fail_on_change: Annotated[
        bool, typer.Option(help="Exit 1 when a measurement changed beyond noise, changed status, appeared or "
                                "disappeared.")
    ] = False,
) -> None:
    """What changed between two runs, and whether each change exceeds the measured noise."""
    from rich.markup import escape

    from dlcompat.compare.changes import compare_runs
    from dlcompat.compare.document import write_comparison
    from dlcompat.compare.text import change_fields, headline

    store_a = _open_store(out, database)
    store_b = store_a if out_b is None and database_b is None else _open_store(
        out_b or out, database_b or (database if out_b is None else None))
    info_a = {**_report_run(store_a, run_a), "source": database or str(out)}
    info_b = {**_report_run(store_b, run_b), "source": database_b or str(out_b or out)}
    comparison = compare_runs(info_a, store_a.rows(info_a["id"]), info_b, store_b.rows(info_b["id"]),
                              pool_seeds=True if pool_seeds else None)
    html, markdown = write_comparison(comparison, output or out / "reports" / f"compare-{info_a['id']}-{info_b['id']}")

    console.print(f"run A [bold]{escape(info_a['id'])}[/] ({escape(str(info_a['name']))}) → run B "
                  f"[bold]{escape(info_b['id'])}[/] ({escape(str(info_b['name']))})"
                  f"{', pooled over seeds' if comparison.pooled else ''}: {escape(headline(comparison))}",
                  highlight=False, soft_wrap=True)
    listed = [*comparison.of_kind("status", "error"), *sorted(comparison.beyond_noise,
                                                                key=lambda c: -abs(c.relative or 0.0))]
    if listed:
        columns = {"verdict": "", "measurement": "measurement", "a": "run A", "b": "run B", "change": "change",
                   "noise": "noise (or error)"}
        table = Table(title="changed beyond noise, or changed status", title_justify="left")
        for key, label in columns.items():
            table.add_column(label, overflow="fold", justify="right" if key in ("a", "b", "change") else "left")
        shown = 20
        for change in listed[:shown]:
            fields = change_fields(change)
            table.add_row(*(escape(fields[key]) for key in columns))
        console.print(table)
        if len(listed) > shown:
            console.print(f"… and {len(listed) - shown} more in the report", highlight=False)
    presence = comparison.of_kind("appeared", "disappeared")
    if presence:
        cells = {(c.kind, c.cell) for c in presence}
        console.print(f"{len(presence)} measurements of {len(cells)} cells appeared or disappeared: see Findings "
                      "in the report", highlight=False)
    typer.echo(f"compare:  {html}")
    typer.echo(f"markdown: {markdown}")
    if fail_on_change and comparison.has_differences:
        raise typer.Exit(1)


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or a unique prefix, or `latest`).")] = "latest",
    format: Annotated[ExportFormat, typer.Option("--format", help="csv or parquet.")] = ExportFormat.csv,
    output: Annotated[Path | None, typer.Option(help="File to write (CSV: standard output when omitted).")] = None,
    out: OutOption = DEFAULT_OUT,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the results database.")] = None,
) -> None:
    """Export a run's results as one tidy table, one row per measurement."""
    from dlcompat.report.export import write_csv, write_parquet

    store = _open_store(out, database)
    rows = store.rows(store.run(run_id)["id"])
    if format is ExportFormat.parquet:
        if output is None:
            _fail("parquet is binary: pass --output FILE")
        write_parquet(rows, output)
    else:
        write_csv(rows, output)


@app.command("export-adversarial")
def export_adversarial(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run id (or a unique prefix, or `latest`).")] = "latest",
    output: Annotated[Path, typer.Option(help="Folder to write the .npz sets and manifest.csv into.")] = Path(
        "adversarial"),
    out: OutOption = DEFAULT_OUT,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the results database.")] = None,
    artifacts: Annotated[str | None, typer.Option(help="The run's artifact store (default: OUT/artifacts).")] = None,
) -> None:
    """Export a run's adversarial sets as .npz files (images, labels, predictions) with a manifest, for reuse."""
    from dlcompat.attacks.export import export_adversarial_sets
    from dlcompat.store.artifacts import ArtifactStore

    store = _open_store(out, database)
    rows = export_adversarial_sets(store, ArtifactStore(artifacts or out / "artifacts"), run_id, output)
    typer.echo(f"{len(rows)} adversarial sets in {output}/ (manifest: {output / 'manifest.csv'})")


def _model_argument(value: str, out: Path, database: str | None) -> tuple[Path, dict[str, Any]]:
    """A model file, or a stored artifact id of a study in `out` (its path `objects/ab/…` or a unique prefix of its
    hash of 8 or more hex digits), with what the job that stored it recorded (its outputs), when the results database
    names it."""
    import re

    from dlcompat.store.artifacts import ARTIFACT_PATH

    if Path(value).is_file() or not (ARTIFACT_PATH.match(value) or re.fullmatch(r"[0-9a-f]{8,64}", value)):
        return Path(value), {}
    objects = out / "artifacts" / "objects"
    found = [objects.parent / value] if ARTIFACT_PATH.match(value) else \
        sorted(objects.glob(f"{value[:2]}/{value[2:]}*"))
    found = [p for p in found if p.is_file()]
    if len(found) != 1:
        _fail(f"{value} is {'an ambiguous' if found else 'no'} artifact id of the study in {out}: pass a model file, "
              "or the artifact's objects/… path (and the study's --out)")
    relative = found[0].relative_to(objects.parent).as_posix()
    if database is None and not (out / "results.sqlite").exists():
        return found[0], {}
    store = _open_store(out, database)
    for run_record in store.runs():
        for key in run_record["job_keys"]:
            job = store.job(key)
            if job is not None and job["outputs"].get("artifact") == relative:
                return found[0], job["outputs"]
    return found[0], {}


@app.command()
def localize(
    reference: Annotated[str, typer.Argument(help="The reference model: a file (.onnx, .tflite, .npz weights, .pt, "
                                                   ".keras) or a stored artifact id of the study in --out.")],
    candidate: Annotated[str, typer.Argument(help="The derived model (those and .pte), or a stored artifact id.")],
    images: Annotated[Path, typer.Option(help="An .npz with x (N, H, W, C) uint8 or float32 in [0, 1], optionally "
                                              "y.")],
    layers: Annotated[bool, typer.Option("--layers", help="Print one line per layer.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    layout: Annotated[
        Layout | None, typer.Option(help="The candidate's input layout, where its file does not say.")] = None,
    out: OutOption = DEFAULT_OUT,
    database: Annotated[
        str | None, typer.Option("--db", help="SQLAlchemy URL of the study's results database (default: the one "
                                              "in --out), for what the jobs recorded of stored artifacts.")
    ] = None,
) -> None:
    """Where a derived model starts to differ from its reference, why, and whether it is more than noise: each
    layer against the reference's float64 evaluation, judged against its measured float32 noise floor."""
    import json

    from dlcompat.findings.hop import describe_hop, localise_files

    reference_path, stored = _model_argument(reference, out, database)
    if stored.get("weights"):  # a study's trained model: its canonical weights are the reference
        reference_path = out / "artifacts" / stored["weights"]
    candidate_path, facts = _model_argument(candidate, out, database)
    result = localise_files(reference_path, candidate_path, images, layout=layout.value if layout else None,
                            candidate_layout=None if layout else facts.get("input_layout"))
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
    else:
        typer.echo("\n".join(describe_hop(result, layers)))


@app.command("list")
def list_components() -> None:
    """Which datasets, models, frameworks, converters and runtimes exist, where, and whether installed."""
    from dlcompat.converters.graph import converter, converter_names
    from dlcompat.data.registry import dataset_names
    from dlcompat.envs.registry import get_env, probe_modules
    from dlcompat.frameworks.registry import framework_entry, framework_names
    from dlcompat.runtimes.base import runtime_entry, runtime_names
    from dlcompat.study.config import preset_names
    from dlcompat.zoo.registry import model_entry, model_names

    out = Console()
    rows: list[tuple[str, str, str, str, str]] = []
    for name in framework_names():
        e = framework_entry(name)
        rows.append(("framework", name, e.env, e.module, e.install))
    for name in converter_names():
        c = converter(name)
        rows.append(("converter", f"{name} ({c.source} → {c.target})", c.env, c.module, f"dlcompat env sync {c.env}"))
    for name in runtime_names():
        r = runtime_entry(name)
        rows.append(("runtime", f"{name} ({r.platform})", r.env, r.module, r.install))
    probes: dict[str, dict[str, str | None]] = {}
    for env in {r[2] for r in rows}:
        probes[env] = probe_modules(env, sorted({r[3] for r in rows if r[2] == env}))
    table = Table(title="frameworks, converters and runtimes")
    for column in ("kind", "name", "environment", "status"):
        table.add_column(column)
    for kind, name, env, module, install in rows:
        version = probes[env].get(module)
        if version:
            status = f"[green]available[/] ({module} {version})"
        elif not get_env(env).exists():
            status = f"[yellow]environment not built[/]: dlcompat env sync {env}"
        else:
            status = f"[red]not installed[/]: {install}"
        table.add_row(kind, name, env, status)
    out.print(table)
    out.print("datasets: " + ", ".join(dataset_names()))
    out.print("models:   " + "; ".join(f"{m} ({model_entry(m).summary})" for m in model_names()))
    out.print("presets:  " + ", ".join(preset_names()))


@env_app.command("list")
def env_list() -> None:
    """Each toolchain environment, its Python, its requirements and whether it is built."""
    from dlcompat.envs.registry import env_names, get_env

    table = Table(title="toolchain environments")
    for column in ("name", "python", "requirements", "location", "built"):
        table.add_column(column)
    for name in env_names():
        e = get_env(name)
        table.add_row(name, e.python, str(e.requirements_path), str(e.location()), "yes" if e.exists() else "no")
    Console().print(table)


@env_app.command("sync")
def env_sync(
    name: Annotated[str | None, typer.Argument(help="Environment name (default: every one).")] = None,
    force: Annotated[bool, typer.Option(help="Reinstall even when the environment is already built.")] = False,
) -> None:
    """Create or complete toolchain environments from their pinned requirements."""
    from dlcompat.envs.registry import env_names, get_env, sync_env

    for env in [name] if name else env_names():
        if not get_env(env).exists() or force:
            console.print(f"building environment {env} from {get_env(env).requirements_path} (minutes) ...")
        typer.echo(f"{env}: {sync_env(env, force=force)}")


@functools.cache
def _click_command() -> Any:
    """The click command typer builds from `app` (tens of milliseconds: once per process, not per call)."""
    return typer.main.get_command(app)


def _command_of(args: list[str]) -> str | None:
    """The subcommand named on a command line (`dlcompat` itself takes no options but --help)."""
    return next((a for a in args if not a.startswith("-")), None)


def _print_error(label: str, message: str) -> None:
    """One line on standard error, whatever the message holds (no wrapping, markup or emoji codes)."""
    from rich.markup import escape

    console.print(f"[bold red]{label}[/] {escape(' '.join(message.splitlines()))}", highlight=False,
                  soft_wrap=True, emoji=False)


def main(argv: list[str] | None = None) -> None:
    """The `dlcompat` command. Exits 0 when done; 1 when the study could not complete (or had findings, with
    --fail-on-findings); 2 on a usage error (click's usage message: an unknown command or option, a bad
    value) or an input error (one sentence)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        # standalone: click prints a usage error with the usage line and exits 2, and exits with a typer.Exit's
        # code (KeyboardInterrupt outside `run`: 130); the errors below come from the commands themselves
        _click_command().main(args=args, prog_name="dlcompat")
    except UserError as exc:
        _print_error("error:", str(exc))
        sys.exit(2)
    except Exception as exc:
        if os.environ.get("DLCOMPAT_DEBUG"):
            raise
        # a crash of `run` stops the study, which resumes from the store; nothing else has anything to resume
        resume = "; the study stopped: run the same command again to resume it" if _command_of(args) == "run" else ""
        _print_error("dlcompat failed:", f"{type(exc).__name__}: {exc} (set DLCOMPAT_DEBUG=1 for the "
                                         f"traceback){resume}")
        sys.exit(1)


if __name__ == "__main__":
    main()
