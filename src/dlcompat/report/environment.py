"""Environment and method: what a reader needs to judge the numbers and reproduce them.

The machine (CPU, BLAS, threads), the seeds, the versions of every toolchain environment the run's jobs
ran in (`run["toolchains"]`: environment name -> Python and packages, as each job recorded them), the
latency method the study configured (`environment.latency_method`), the method fields every
measurement recorded, and the study configuration itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .formatting import join_words, plural
from .narrative import environment_answer
from .tables import (
    Cell,
    Column,
    Table,
    environment_table,
    methods_table,
    packages_table,
    text_cell,
)

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


def toolchains(job_environments: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(toolchain environment -> its Python, platform, interpreter and every package its jobs recorded;
    job key -> its environment), from what each job recorded (a job records the packages it imported)."""
    merged: dict[str, dict[str, Any]] = {}
    job_env: dict[str, str] = {}
    for key, entry in job_environments.items():
        if not isinstance(entry, list | tuple) or len(entry) != 2 or not isinstance(entry[1], Mapping):
            continue
        env, recorded = str(entry[0]), entry[1]
        job_env[str(key)] = env
        info = merged.setdefault(env, {k: v for k, v in recorded.items() if k in ("python", "platform", "executable")}
                                 | {"packages": {}})
        packages = recorded.get("packages") or {}
        for name, version in (packages.items() if isinstance(packages, Mapping) else ()):
            known = info["packages"].get(name)
            if known is None:
                info["packages"][name] = str(version)
            elif str(version) not in known.split(" / "):  # two jobs of one environment saw different versions
                info["packages"][name] = f"{known} / {version}"
    for info in merged.values():
        info["packages"] = dict(sorted(info["packages"].items(), key=lambda item: item[0].lower()))
    return merged, job_env


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


def environment_section_answer(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
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


def environment_section(run: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> Any:
    """The report's environment and method section (a `document.Section`)."""
    from .document import Block, Section  # the document imports this module; its classes are needed at call time

    tables = [environment_table(run, rows), toolchains_table(run), latency_method_table(run), packages_table(run),
              methods_table(rows)]
    blocks = [Block("config", "Study configuration", str(run["config_toml"]).rstrip("\n"), "toml")] \
        if run.get("config_toml") else []
    return Section("environment", "Environment and method", environment_section_answer(run, rows),
                   tables=[t for t in tables if t.rows], blocks=blocks)


__all__ = ["environment_section", "latency_method_table", "toolchains", "toolchains_table"]
