"""How a change is written for a reader: its values, its delta, one sentence, one terminal line."""

from __future__ import annotations

from dlcompat.report.formatting import MISSING, error_summary, format_value
from dlcompat.report.rows import is_native

from .changes import Change, Comparison, error_of, status_of
from .noise import Side


def _signed(text: str, value: float) -> str:
    return text if value < 0 or text.startswith(("+", "-")) else f"+{text}"


def format_delta(delta: float, unit: str, metric: str) -> str:
    """A change written for a reader: percentage points for fractions, else the unit's own way, signed."""
    if unit.strip().lower() in {"fraction", "ratio", "proportion"}:
        return f"{delta * 100:+.2f} pp"
    return _signed(format_value(delta, unit, metric), delta)


def value_text(side: Side | None) -> str:
    """One side's figure as shown: its value (and over how many seeds), its status when not ok, MISSING when absent."""
    if side is None:
        return MISSING
    status = status_of(side.rows)
    if status != "ok":
        return status
    value = side.value
    text = format_value(value, side.unit, side.metric)
    if len(side.measured) > 1:
        text += f" (mean of {len(side.measured)})"
    return text


def describe(change: Change) -> str:
    """`accuracy of lenet1 (pytorch → onnxruntime, torch.onnx (dynamo)): 12.00 % → 24.00 % (+12.00 pp)`."""
    _dataset, model, framework, target, variant, seed = change.cell
    where = framework if is_native(framework, target) else f"{framework} → {target}"
    if variant:
        where += f", {variant}"
    if seed is not None:
        where += f", seed {seed}"
    text = f"{change.metric} of {model} ({where})"
    if change.kind == "value" and change.delta is not None:
        delta = format_delta(change.delta, change.unit, change.metric)
        text += f": {value_text(change.a)} → {value_text(change.b)} ({delta})"
    elif change.kind in ("status", "error"):
        text += f": {change.status_a} → {change.status_b}"
    return text


def headline(comparison: Comparison) -> str:
    """One line for a terminal: the counts that matter."""
    counts = comparison.counts()
    transitions = comparison.status_transitions()
    status = f" ({', '.join(f'{n} {t}' for t, n in transitions.items())})" if transitions else ""
    return (f"{counts['beyond noise']:,} changed beyond noise, {counts['within noise']:,} within noise, "
            f"{counts['unchanged']:,} unchanged; {counts['appeared']:,} appeared, {counts['disappeared']:,} "
            f"disappeared, {counts['status changed']:,} changed status{status}")


def change_fields(change: Change) -> dict[str, str]:
    """One change as a terminal's table shows it: where, what, run A, run B, the change, the noise, the verdict.

    For a status change the noise is the error of the side that is not ok.
    """
    _dataset, model, framework, target, variant, seed = change.cell
    where = framework if is_native(framework, target) else f"{framework} → {target}"
    where += f", {variant}" if variant else ""
    where += f", seed {seed}" if seed is not None else ""
    delta = change.delta
    if change.noise is not None:
        noise = change.noise.text
    else:
        failing = change.b if change.b and status_of(change.b.rows) != "ok" else change.a
        noise = error_summary(error_of(failing.rows)) if failing else change.reason
    return {"measurement": f"{change.metric} of {model} ({where})", "a": value_text(change.a),
            "b": value_text(change.b),
            "change": "" if delta is None else format_delta(delta, change.unit, change.metric),
            "noise": noise, "verdict": change.label}


__all__ = ["change_fields", "describe", "format_delta", "headline", "value_text"]
