"""Environment and method: what a reader needs to judge the numbers and reproduce them.

The machine (CPU, BLAS, threads), the seeds, the versions of every toolchain environment the run's jobs
ran in (`run["toolchains"]`: environment name -> Python and packages, as each job recorded them), the
latency method the study configured (`environment.latency_method`), the method fields every
measurement recorded, and the study configuration itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..formatting import as_int, display_name, join_words, plural
from ..model import Block, Cell, Column, Section, Table
from ..rows import COMPARISON_METRICS, CONVERSION_METRICS, LATENCY_METRICS, TRAINING_METRICS, distinct
from ..tables import compact, field_table, text_cell
from .base import RunData, SectionSpec


def package_of(name: str) -> str:
    """The package whose version stands for a framework or runtime (its registry entry's `package`), else `name`."""
    from dlcompat.frameworks.registry import FRAMEWORKS
    from dlcompat.runtimes.base import RUNTIMES

    for registry in (FRAMEWORKS, RUNTIMES):
        if name in registry and registry.get(name).package:
            return registry.get(name).package
    return name


#: how the report names the fields of the configured latency method (study/config.py LatencyConfig)
LATENCY_METHOD_LABELS: dict[str, str] = {
    "batch_size": "batch size",
    "warmup": "warm-up calls (at least)",
    "warmup_time_s": "warm-up time (at least, s)",
    "min_repeats": "timed calls (at least)",
    "min_time_s": "timed duration (at least, s)",
    "ci_level": "confidence level of the median's CI",
    "max_ci_rel_width": "stop when the CI is narrower than (relative to the median)",
    "max_time_s": "give up converging after (s)",
}


# -- the answer -------------------------------------------------------------------------------------


def environment_answer(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The machine, the threads and seeds, and the versions of the frameworks and runtimes the rows name."""
    environment = run.get("environment") or {}
    parts: list[str] = []
    if any(environment.get(k) for k in ("python", "platform", "cpu", "cpu_count")):
        text = "Measured"
        if environment.get("python"):
            text += f" with Python {environment['python']}"
        if environment.get("platform"):
            text += f" on {environment['platform']}"
        cpu = environment.get("cpu")
        cpus = as_int(environment.get("cpu_count"))
        if cpu or cpus:
            text += ", " + (str(cpu) if cpu else "a CPU") + (f" ({plural(cpus, 'CPU')})" if cpus else "")
        parts.append(text + ".")
    settings = []
    threads = as_int(run.get("threads"))
    if threads:
        settings.append(plural(threads, "thread"))
    elif run.get("threads"):
        settings.append(f"threads {run['threads']}")
    seeds = seeds_of(run, rows)
    if seeds:
        settings.append(("seed " if len(seeds) == 1 else "seeds ") + join_words([str(s) for s in seeds]))
    if settings:
        parts.append(f"The run used {join_words(settings)}.")
    packages = environment.get("packages") or {}
    if isinstance(packages, Mapping) and packages:
        names = [*distinct(rows, "framework"), *distinct(rows, "target")]
        versions = []
        for name in dict.fromkeys(str(n) for n in names):
            package = package_of(name)
            if package in packages:
                versions.append(f"{display_name(name)} {packages[package]}")
        if versions:
            parts.append(f"Versions: {join_words(versions)}.")
    if not parts:
        return "The run recorded no environment."
    if run.get("config_toml"):
        parts.append("The study configuration is reproduced below.")
    return " ".join(parts)


def environment_section_answer(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """The section's answer: `environment_answer`, then BLAS, the toolchain environments and the latency method."""
    parts = [environment_answer(run, rows)]
    environment = run.get("environment") or {}
    if not isinstance(environment, Mapping) or not environment.get("python"):
        return parts[0]
    blas = environment.get("blas")
    parts.append(f"BLAS: {blas}." if blas else "The run recorded no BLAS library.")
    toolchains = run.get("toolchains") or {}
    if isinstance(toolchains, Mapping) and toolchains:
        parts.append(f"Jobs ran in {plural(len(toolchains), 'toolchain environment')} "
                     f"({join_words(sorted(str(n) for n in toolchains))}); their versions are listed below.")
    method = environment.get("latency_method")
    if isinstance(method, Mapping) and method:
        parts.append(
            f"Latency: batch size {method.get('batch_size', '?')}, at least {method.get('warmup', '?')} warm-up calls "
            f"and {method.get('warmup_time_s', '?')} s, then at least {method.get('min_repeats', '?')} timed calls and "
            f"{method.get('min_time_s', '?')} s, until the {method.get('ci_level', 0.95):g} confidence interval of "
            f"the median is within {float(method.get('max_ci_rel_width', 0)) * 100:g} % of it (at most "
            f"{method.get('max_time_s', '?')} s).")
    return " ".join(p for p in parts if p)


# -- tables -----------------------------------------------------------------------------------------


ENVIRONMENT_LABELS: dict[str, str] = {
    "python": "Python",
    "platform": "platform",
    "cpu": "CPU",
    "cpu_count": "CPUs",
}


def seeds_of(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The run's recorded seeds, else the seeds its rows carry."""
    seeds = run.get("seeds")
    if seeds:
        return list(seeds) if isinstance(seeds, list | tuple) else [seeds]
    return sorted({row["seed"] for row in rows if row["seed"] is not None})


def environment_table(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Table:
    """Python, platform, CPU, threads, seeds, and any other scalar the environment recorded."""
    environment = run.get("environment") or {}
    pairs: list[tuple[str, Any]] = [(label, environment.get(key))
                                    for key, label in ENVIRONMENT_LABELS.items()]
    shown_elsewhere = {*ENVIRONMENT_LABELS, "packages", "threads", "seeds"}
    pairs += [(key, value) for key, value in environment.items()
              if key not in shown_elsewhere and not isinstance(value, Mapping)]
    pairs += [("threads", run.get("threads") or environment.get("threads")), ("seeds", seeds_of(run, rows))]
    return field_table("environment-facts", "Environment", pairs)


def packages_table(run: Mapping[str, Any]) -> Table:
    """Every package version the run's environment recorded, by name."""
    packages = (run.get("environment") or {}).get("packages") or {}
    table = Table("packages", "Package versions",
                  [Column("package", "package"), Column("version", "version")])
    if isinstance(packages, Mapping):
        for name in sorted(packages, key=str.lower):
            table.rows.append({"package": text_cell(name), "version": text_cell(compact(packages[name]))})
    return table


def method_family(metric: str) -> str:
    """Metrics measured together share a method: every `latency_*` is `latency`, and so on."""
    if metric.startswith("latency_") or metric in LATENCY_METRICS:
        return "latency"
    if metric in TRAINING_METRICS:
        return "training"
    if metric in COMPARISON_METRICS:
        return "comparison"
    if metric in CONVERSION_METRICS:
        return "conversion"
    return metric


#: A content-addressed artifact reference (store/artifacts.py): it is in the export's `artifact`
#: column and means nothing in a summary of methods.
_ARTIFACT_REFERENCE = re.compile(r"objects/[0-9a-f]{2}/[0-9a-f]{16,}[^/]*")
_EVALUATION_FAMILIES = frozenset({"accuracy", "load_time", "model_size", "peak_rss"})


def methods(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """Measurement family -> method field -> its distinct values (as compact text), in first-seen order.

    Fields that only reference artifacts are left out, and so is a field of another evaluation figure
    whose values repeat the latency family's (an evaluation records its runtime once per figure).
    """
    out: dict[str, dict[str, list[str]]] = {}
    for row in rows:
        if not row["method"]:
            continue
        fields = out.setdefault(method_family(row["metric"]), {})
        for name, value in row["method"].items():
            values = fields.setdefault(str(name), [])
            text = compact(value)
            if text not in values:
                values.append(text)
    latency = out.get("latency", {})
    for family, fields in out.items():
        for name in list(fields):
            values = fields[name]
            if all(_ARTIFACT_REFERENCE.fullmatch(v) for v in values) or (
                    family in _EVALUATION_FAMILIES and set(values) <= set(latency.get(name, ()))):
                del fields[name]
    order = {"latency": 0, "training": 1, "conversion": 2, "comparison": 3}
    return dict(sorted(((k, v) for k, v in out.items() if v), key=lambda item: (order.get(item[0], 9), item[0])))


def methods_table(rows: Sequence[Mapping[str, Any]], limit: int = 6) -> Table:
    """Each measurement family's method fields and their values (the first `limit` of them)."""
    table = Table("methods", "Measurement method", [
        Column("measurement", "measurement"), Column("field", "field"), Column("values", "value(s)")])
    for family, fields in methods(rows).items():
        for name, values in fields.items():
            shown = ", ".join(values[:limit]) + (f", … ({len(values)} values)" if len(values) > limit else "")
            table.rows.append({"measurement": text_cell(family), "field": text_cell(name),
                               "values": text_cell(shown)})
    return table


def toolchains_table(run: Mapping[str, Any]) -> Table:
    """One row per toolchain environment the run's jobs ran in: its Python, platform and package versions."""
    table = Table("toolchains", "Toolchain environments (as each job recorded them)", [
        Column("env", "environment"), Column("python", "Python"), Column("packages", "packages"),
        Column("executable", "interpreter")])
    toolchains = run.get("toolchains") or {}
    if not isinstance(toolchains, Mapping):
        return table
    for name in sorted(toolchains, key=lambda n: (n != "main", str(n))):
        info = toolchains[name] if isinstance(toolchains[name], Mapping) else {}
        packages = info.get("packages") or {}
        listed = ", ".join(f"{package} {version}" for package, version in packages.items()) \
            if isinstance(packages, Mapping) else str(packages)
        table.rows.append({"env": text_cell(name), "python": text_cell(info.get("python")),
                           "packages": text_cell(listed), "executable": text_cell(info.get("executable"))})
    return table


def latency_method_table(run: Mapping[str, Any]) -> Table:
    """The latency method the study configured: warm-up, minimum calls and time, when the median counts as settled."""
    method = (run.get("environment") or {}).get("latency_method") or {}
    table = Table("latency-method", "Latency method (configured; each figure's own record is under "
                  "Measurement method)", [Column("field", "field"), Column("value", "value", numeric=True)])
    if isinstance(method, Mapping):
        for name, value in method.items():
            table.rows.append({"field": text_cell(LATENCY_METHOD_LABELS.get(str(name), str(name))),
                               "value": Cell(str(value), value if isinstance(value, int | float) else str(value))})
    return table


def build(run: RunData) -> Section:
    """The environment and method section: machine, seeds, toolchains, latency method, methods, the config."""
    info, rows = run.info, run.rows
    tables = [environment_table(info, rows), toolchains_table(info), latency_method_table(info), packages_table(info),
              methods_table(rows)]
    blocks = [Block("config", "Study configuration", str(info["config_toml"]).rstrip("\n"), "toml")] \
        if info.get("config_toml") else []
    return Section(SPEC.id, SPEC.title, environment_section_answer(info, rows),
                   tables=[t for t in tables if t.rows], blocks=blocks)


SPEC = SectionSpec("environment", "Environment and method", build)

__all__ = ["SPEC", "build", "environment_answer", "environment_section_answer", "environment_table",
           "latency_method_table", "methods", "methods_table", "packages_table", "seeds_of", "toolchains_table"]
