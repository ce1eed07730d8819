"""Findings grouped: the same tool failing with the same error is one finding, listing every cell it hit.

A study of many models and routes fails the same way many times (one missing converter, one backend
that rejects dynamic shapes). Listing each cell buries the few distinct problems, so the report groups
them: same status, same tool (the converter, or the runtime and its backend, that failed), same
*normalised underlying* error (the context a job put around it stripped: which phase of a browser page
hit it, which runtime needed a missing converter; then numbers, shapes, paths, hashes and the cell's own
names replaced by placeholders) and the same layers or operators named in the error. The job that hit
it does not count: a backend that rejects a batch fails the evaluation's latency loop and the transfer
of adversarial sets alike, and that is one group; a transfer that lost its adversarial sets to a failed
attack joins that attack's group. Each group carries the versions involved — the tool versions its rows
recorded, the runtime's versions from the same runtime's other rows, and the packages of the toolchain
environment its jobs ran in — and the artifacts to reproduce it: what its rows point at, and the model
the failed job was given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .findings import DIVERGED, STATUS_ORDER, Finding, findings
from .formatting import display_name, error_summary
from .layer_kinds import layer_kind
from .targets import BACKEND_SEPARATOR, STEP_SEPARATOR, WEIGHT_TRANSFER, chain_prefixes, is_framework, last_step

_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+")
_HASH = re.compile(r"\b[0-9a-f]{12,}\b")
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\w.~-]*/)+[\w.-]+")
_NUMBER = re.compile(r"(?<![A-Za-z_0-9])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
#: a counter a tool appended to a generated name (`tf.math.add_7`, `Conv__12`): the same layer in another run
_NAME_COUNTER = re.compile(r"(?<=[A-Za-z])(_+)\d+\b")
_SPACES = re.compile(r"\s+")
#: operators and layers named in error texts: PyTorch's `aten::...`, ONNX/TF/Keras op and layer names
_LAYERS = (
    re.compile(r"\baten::[A-Za-z0-9_.]+"),
    re.compile(r"\b(?i:op|operator|op_type|optype|layer|node)\b(?:\s+type)?\s*[:=]?\s*['\"`]?([A-Z][A-Za-z0-9_]+)"),
    re.compile(r"\b(?i:unsupported)\s+(?i:op|operator|layer)s?\b\s*:?\s*['\"`]?([A-Za-z][A-Za-z0-9_:.]+)"),
)
#: method fields that record versions of the tools involved
_VERSION_FIELDS: tuple[str, ...] = ("tool_version", "version", "browser", "npm", "versions")
INCONSISTENT_PATTERN = "predicted a different label than the source model on some test images"
#: statuses whose findings are measured results, not errors: their group's pattern is their cause
MEASURED_STATUSES = ("inconsistent", DIVERGED)
#: what a transfer job records for an attack that left no adversarial sets (study/jobs/transfer.py)
MISSING_SETS = "no adversarial sets to transfer: "
#: the context a job or runner puts around an error, stripped to leave the error underneath
_CONTEXT = (
    # a browser page's error (runtimes/browser/runner.py `call`), or a backend the page lacks (`_activate`):
    # `RuntimeError: ortweb webgl in the page, the latency loop: Error: …` -> `Error: …`,
    # `ortweb webgpu in Chromium 156.0.8078.129: navigator.gpu.requestAdapter() returned null: …` -> `navigator…`
    re.compile(r"^(?:[A-Za-z_][\w.]*: )?[\w.-]+(?: +[\w.-]+)? +in (?:the page, [^:]*|Chromium [\w.]+): "),
    # a transfer without the sets of an attack that failed (study/jobs/transfer.py): the attack's own error
    re.compile(rf"^{re.escape(MISSING_SETS)}.*? ended (?:failed|unavailable|skipped|lost): "),
)
#: context inside an error: (pattern, replacement)
_PHASES = (
    # the browser killed past its time limit, whatever the page was doing
    (re.compile(r"^((?:TimeoutError: )?the page did not finish) .*? (within )"), r"\1 \2"),
    # the runtime a missing converter path was needed by (study/plan.py): the missing path is the cause
    (re.compile(r" \(needed by [\w.-]+\)$"), ""),
)


def normalise_error(text: str, names: Mapping[str, str] | None = None) -> str:
    """The error's summary line with what varies from cell to cell replaced by placeholders.

    `names` maps a name to its placeholder (`{"lenet5": "<model>", "jax": "<framework>"}`); paths, hashes and
    numbers become `<url>`, `<path>`, `<hash>` and `N`.
    """
    line = _URL.sub("<url>", error_summary(text, limit=2000))
    line = _HASH.sub("<hash>", line)
    line = _PATH.sub("<path>", line)
    for name in sorted((n for n in (names or {}) if n and len(n) > 1), key=len, reverse=True):
        line = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", (names or {})[name], line)
    line = _NAME_COUNTER.sub(r"\1N", line)
    line = _NUMBER.sub("N", line)
    return _SPACES.sub(" ", line).strip()


def underlying_error(text: str) -> str:
    """The error's summary line without the context the job or runner put around it (see `_CONTEXT`)."""
    line = error_summary(text, limit=2000)
    for pattern in _CONTEXT:
        stripped = pattern.sub("", line, count=1)
        if stripped != line and stripped.strip():
            line = stripped
    for pattern, replacement in _PHASES:
        line = pattern.sub(replacement, line, count=1)
    return line.strip()


def layers_in(text: str) -> tuple[str, ...]:
    """The operators and layers an error text names, in order, each once."""
    found: list[str] = []
    for pattern in _LAYERS:
        for match in pattern.finditer(text or ""):
            name = match.group(1) if match.groups() else match.group(0)
            if name not in found:
                found.append(name)
    return tuple(found)


def tool_of(finding: Finding) -> str:
    """The converter or runtime a finding is about: `onnx2tf`, `ONNX Runtime Web · webgl`, `torch.onnx (dynamo)`.

    A transfer job runs adversarial sets on the model its evaluate job runs, loaded the same way, so its tool is
    that evaluation's; a transfer that got no sets from a failed attack is about that attack.
    """
    if finding.status == DIVERGED:  # the converter that made the artifact
        return last_step(finding.variant) or display_name(finding.target)
    if finding.kind == "transfer":
        if finding.error.startswith(MISSING_SETS):
            return str(finding.method.get("attack") or finding.variant.split(" ", 1)[0] or "attack")
        # its variant is `<attacks> · <the evaluation's variant>` (attacks/transfer.py `transfer_variant`)
        finding = replace(finding, kind="evaluate", variant=finding.variant.partition(BACKEND_SEPARATOR)[2])
    variant, target = finding.variant, finding.target
    if finding.kind == "convert":
        return last_step(variant) or display_name(target)
    if finding.kind in ("train", "reproduce"):
        return display_name(finding.framework)
    if finding.kind == "attack":
        return str(finding.method.get("attack") or variant.split(" ", 1)[0] or "attack")
    if finding.kind == "unavailable" and "converter" in finding.error.lower():
        return "converter graph"
    if is_framework(target) and target != finding.framework:  # a move into another framework
        if variant == WEIGHT_TRANSFER:
            return f"weight transfer into {display_name(target)}"
        return last_step(variant) if STEP_SEPARATOR in variant else f"converters into {display_name(target)}"
    backend = variant.partition(BACKEND_SEPARATOR)[2]
    name = display_name(target) or display_name(finding.framework)
    tool = f"{name} · {backend}" if backend else name
    if finding.status == "inconsistent" and variant:
        return f"{tool} · {last_step(variant)}"
    return tool


def divergence_pattern(finding: Finding) -> str:
    """A divergence's cause, the layer's index and the model aside: `beyond its noise floor from a convolution
    layer: weights`, so that one converter's one fault in one kind of layer is one group."""
    kind = layer_kind(finding.model, finding.method.get("first_divergent_layer"))
    where = "at its output" if kind == "output" else f"from a {kind} layer"
    return f"beyond its noise floor {where}: {finding.method.get('fault_type') or 'fault type undetermined'}"


@dataclass
class FindingGroup:
    status: str
    tool: str
    pattern: str  # the normalised error
    layers: tuple[str, ...]
    members: list[Finding] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)

    @property
    def error(self) -> str:
        """The full error text of its first cell (the others differ only in what normalisation replaced)."""
        return self.members[0].error

    @property
    def distinct_errors(self) -> int:
        return len({m.error for m in self.members})

    @property
    def cause(self) -> str:
        """Its first cell's underlying error (see `underlying_error`); an inconsistency's or a divergence's pattern."""
        return self.pattern if self.status in MEASURED_STATUSES else underlying_error(self.error)

    @property
    def summary(self) -> str:
        """One line that says what went wrong: the underlying error when every cell hit the same, else the pattern."""
        if self.status == "inconsistent" or len({underlying_error(m.error) for m in self.members}) > 1:
            return self.pattern
        return self.cause

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of job that hit it (`evaluate`, `transfer`, …), each once."""
        return tuple(dict.fromkeys(m.kind for m in self.members))


def cell_label(finding: Finding) -> str:
    """`lenet5 · PyTorch → ONNX Runtime Web · torch.onnx (dynamo) · webgl · seed 0`."""
    parts = [finding.model or "(no model)", display_name(finding.framework)]
    if finding.target and finding.target != finding.framework:
        parts[-1] += f" → {display_name(finding.target)}"
    if finding.variant:
        parts.append(finding.variant)
    if finding.seed is not None:
        parts.append(f"seed {finding.seed}")
    return " · ".join(parts)


def _method_versions(method: Mapping[str, Any], tool: str) -> list[str]:
    out = []
    for name in _VERSION_FIELDS:
        value = method.get(name)
        if value in (None, "", {}, [], "unknown"):
            continue
        if isinstance(value, Mapping):
            out += [f"{package} {version}" for package, version in value.items()]
        elif name == "tool_version":
            out.append(f"{method.get('tool') or tool} {value}")
        elif name == "version":
            out.append(f"{display_name(str(method.get('runtime') or tool))} {value}")
        else:
            out.append(str(value))
    return out


def _runtime_versions(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Target runtime -> the versions its measured rows recorded (a failed row records none of its own)."""
    out: dict[str, list[str]] = {}
    for row in rows:
        if row["status"] != "ok" or not row["method"] or row["kind"] not in ("evaluate", "convert"):
            continue
        found = out.setdefault(row["target"], [])
        for version in _method_versions(row["method"], display_name(row["target"])):
            if version not in found:
                found.append(version)
    return out


def _upstream_artifacts(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[Any, ...], str]:
    """(dataset, model, framework, seed, variant) -> the model a job downstream was given: a convert step's output
    by its chain prefix, the trained model by the empty variant."""
    out: dict[tuple[Any, ...], str] = {}
    for row in rows:
        if row["status"] != "ok" or not row["artifact"]:
            continue
        where = (row["dataset"], row["model"], row["framework"], row["seed"])
        if row["kind"] == "convert":
            out.setdefault((*where, row["variant"]), row["artifact"])
        elif row["kind"] == "train" and row["metric"] == "train_time":
            out.setdefault((*where, ""), row["artifact"])
    return out


def _input_artifact(finding: Finding, upstream: Mapping[tuple[Any, ...], str]) -> str:
    """The model the failed job was given: the previous convert step's output, else the trained model."""
    if finding.kind in ("train", "reproduce", "unavailable", "transfer"):
        return ""
    where = (finding.dataset, finding.model, finding.framework, finding.seed)
    chained = (finding.kind in ("convert", "evaluate", "compare", "localize")
               and finding.variant not in ("", WEIGHT_TRANSFER))
    prefixes = chain_prefixes(finding.variant) if chained else []
    if finding.kind == "convert":
        prefixes = prefixes[:-1]  # its own output never came
    for prefix in reversed(prefixes):
        if (*where, prefix) in upstream:
            return upstream[(*where, prefix)]
    return upstream.get((*where, ""), "")


def _environment_versions(run: Mapping[str, Any], jobs: Sequence[str]) -> list[str]:
    """`main: Python 3.11.7, torch 2.13.0+cpu, …` for each toolchain environment the jobs ran in."""
    job_env = run.get("job_env") or {}
    toolchains = run.get("toolchains") or {}
    out = []
    for env in dict.fromkeys(str(job_env[j]) for j in jobs if j in job_env):
        info = toolchains.get(env) or {}
        packages = info.get("packages") or {}
        parts = [f"Python {info['python']}"] if info.get("python") else []
        parts += [f"{name} {version}" for name, version in packages.items()]
        out.append(f"{env} environment: {', '.join(parts)}" if parts else f"{env} environment")
    return out


def group_findings(rows: Sequence[Mapping[str, Any]], run: Mapping[str, Any] | None = None) -> list[FindingGroup]:
    """Every finding (see `findings.findings`), grouped by status, tool, normalised underlying error and layers
    named, whichever job hit it."""
    run = run or {}
    groups: dict[tuple[str, str, str, tuple[str, ...]], FindingGroup] = {}
    for finding in findings(rows):
        tool = tool_of(finding)
        if finding.status == "inconsistent":
            pattern, layers = INCONSISTENT_PATTERN, ()
        elif finding.status == DIVERGED:
            pattern, layers = divergence_pattern(finding), ()
        else:
            names = {finding.model: "<model>", finding.dataset: "<dataset>", finding.framework: "<framework>"}
            if is_framework(finding.target):
                names[finding.target] = "<framework>"
            cause = underlying_error(finding.error)
            pattern, layers = normalise_error(cause, names), layers_in(finding.error)
        key = (finding.status, tool, pattern, layers)
        groups.setdefault(key, FindingGroup(finding.status, tool, pattern, layers)).members.append(finding)
    runtime_versions = _runtime_versions(rows)
    upstream = _upstream_artifacts(rows)
    root = str(run.get("artifacts") or "").rstrip("/")
    for group in groups.values():
        versions: list[str] = []
        for finding in group.members:
            recorded = _method_versions(finding.method, group.tool)
            if not recorded and finding.kind != "unavailable":  # a failed row records none: its runtime's
                recorded = runtime_versions.get(finding.target, [])
            for version in recorded:
                if version not in versions:
                    versions.append(version)
        jobs = [f.job for f in group.members if f.kind != "unavailable"]  # the planner's findings ran nothing
        for version in _environment_versions(run, jobs):
            if version not in versions:
                versions.append(version)
        group.versions = versions
        artifacts: list[str] = []
        for finding in group.members:
            for ref in (_input_artifact(finding, upstream), *finding.artifacts):
                path = f"{root}/{ref}" if ref and root and not ref.startswith(("/", root)) else ref
                if path and path not in artifacts:
                    artifacts.append(path)
        group.artifacts = artifacts
    return list(groups.values())


def ordered_groups(groups: Sequence[FindingGroup]) -> list[FindingGroup]:
    """The groups in the report's order, which numbers them G1, G2, …: failures, then unavailable cells, then
    inconsistencies; the most cells first within each."""
    return sorted(groups, key=lambda g: (STATUS_ORDER.get(g.status, 5), -len(g.members), g.tool))


def status_counts(groups: Sequence[FindingGroup]) -> dict[str, int]:
    """Status -> how many cells the groups of that status hold, in the report's order of statuses."""
    counts: dict[str, int] = {}
    for group in ordered_groups(groups):
        counts[group.status] = counts.get(group.status, 0) + len(group.members)
    return counts


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def group_line(number: int, group: FindingGroup, width: int | None = 160, *, normalised: bool = False) -> str:
    """`G3   failed          2 cells  ONNX Runtime Web · webgl: Error: input tensor[0] check failed: …`, cut to `width`
    characters: its number in the report, status, cells, tool and what went wrong (`summary`, or with
    `normalised` the pattern that identifies it)."""
    cells = f"{len(group.members):>4} {'cells' if len(group.members) != 1 else 'cell '}"
    line = f"G{number:<3} {group.status:<12} {cells}  {group.tool}: {group.pattern if normalised else group.summary}"
    return line if width is None else _clip(line, width)


def group_record(number: int, group: FindingGroup) -> dict[str, Any]:
    """A group as plain data (for JSON): its id, status, tool, cause, every cell with its job and error."""
    return {
        "id": f"G{number}", "status": group.status, "tool": group.tool, "pattern": group.pattern,
        "cause": group.cause, "layers": list(group.layers), "count": len(group.members), "kinds": list(group.kinds),
        "cells": [{"label": cell_label(f), "kind": f.kind, "job": f.job, "dataset": f.dataset, "model": f.model,
                   "framework": f.framework, "target": f.target, "variant": f.variant, "seed": f.seed,
                   "metrics": list(f.metrics), "error": f.error} for f in group.members],
        "versions": list(group.versions), "artifacts": list(group.artifacts),
    }


__all__ = ["INCONSISTENT_PATTERN", "MEASURED_STATUSES", "MISSING_SETS", "FindingGroup", "cell_label",
           "divergence_pattern", "group_findings", "group_line", "group_record", "layers_in", "normalise_error",
           "ordered_groups", "status_counts", "tool_of", "underlying_error"]
