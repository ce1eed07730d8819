"""How a number or a name is written in the report: by its unit, the same way in HTML and Markdown."""

from __future__ import annotations

import functools
import math
import re

#: Shown where a cell has no measurement at all.
MISSING = "—"

#: How the report writes a package that stands for a framework or runtime (the registries' entries carry their own
#: titles, `display_names`).
PACKAGE_TITLES: dict[str, str] = {
    "torch": "PyTorch",
    "keras": "Keras",
    "flax": "Flax",
    "ort": "ONNX Runtime",
    "ort-web": "ONNX Runtime Web",
    "onnxruntime-web": "ONNX Runtime Web",
    "tensorflowjs": "TensorFlow.js",
}

_FRACTION_UNITS = {"fraction", "ratio", "proportion"}
_BYTE_UNITS = {"bytes", "byte", "b"}
_SECOND_UNITS = {"s", "sec", "second", "seconds"}
_MILLISECOND_UNITS = {"ms", "millisecond", "milliseconds"}
_COUNT_UNITS = {"count", "images", "samples", "items"}


def as_int(value: object) -> int | None:
    """An integer from a run field that should be one (`"2"` -> 2); None when it is not."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


@functools.cache
def display_names() -> dict[str, str]:
    """Registry name -> title, of every framework, model format and runtime (their entries' `title`), and of
    the packages that stand for them."""
    from dlcompat.converters.graph import FORMATS
    from dlcompat.frameworks.registry import FRAMEWORKS
    from dlcompat.runtimes.base import RUNTIMES

    return {**PACKAGE_TITLES, **{entry.name: entry.title for entry in (*FRAMEWORKS, *FORMATS, *RUNTIMES)}}


def display_name(name: str) -> str:
    """`onnxruntime` -> `ONNX Runtime`; a name the report does not know is returned unchanged."""
    return display_names().get(name.lower(), name) if name else name


def compact_exponent(text: str) -> str:
    """`3.1e-06` -> `3.1e-6`, `1e+03` -> `1e3`."""
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), text)


def significant(value: float, digits: int = 3) -> str:
    """A number to `digits` significant figures without switching to exponents for large values.

    Very small magnitudes (below 0.001) are written in compact scientific notation: `3.1e-6`.
    """
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude < 1e-3:
        return compact_exponent(f"{value:.{max(digits - 1, 1)}g}")
    if magnitude >= 10**digits:
        return f"{value:,.0f}"
    text = f"{value:.{digits}g}"
    return compact_exponent(text) if "e" in text else text


def scientific(value: float) -> str:
    """Two significant figures, exponent when small or large: `3.1e-6`, `0.25`, `0`."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    return compact_exponent(f"{value:.2g}")


def percent(fraction: float, decimals: int = 2) -> str:
    """0.9833 -> `98.33 %`."""
    return f"{fraction * 100:.{decimals}f} %"


def count(value: float) -> str:
    """An integer count with thousands separators; a non-integer count keeps its fraction."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return significant(value, 4)


def human_bytes(value: float) -> str:
    """1234567 -> `1.23 MB` (decimal units, like file managers and model hubs)."""
    magnitude = abs(value)
    for factor, suffix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if magnitude >= factor:
            return f"{significant(value / factor, 3)} {suffix}"
    return f"{int(value):,} B" if float(value).is_integer() else f"{significant(value)} B"


def format_value(value: float | None, unit: str = "", metric: str = "") -> str:
    """A measured value written for a reader, chosen by its unit (and, for plain numbers, its metric)."""
    if value is None:
        return MISSING
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    unit_key = (unit or "").strip().lower()
    if unit_key in _FRACTION_UNITS:
        return percent(value)
    if unit_key in _BYTE_UNITS:
        return human_bytes(value)
    if unit_key in _SECOND_UNITS:
        return f"{significant(value)} s"
    if unit_key in _MILLISECOND_UNITS:
        return f"{significant(value)} ms"
    if unit_key in _COUNT_UNITS:
        return count(value)
    if "logit" in metric or "diff" in metric:
        return scientific(value)
    text = count(value) if float(value).is_integer() else significant(value, 4)
    return f"{text} {unit}".rstrip() if unit else text


def error_summary(text: str, limit: int = 240) -> str:
    """The one line of an error text that says what went wrong.

    For a Python traceback that is its last line (the exception), otherwise the first non-empty line;
    cut to `limit` characters.
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def join_words(items: list[str], conjunction: str = "and") -> str:
    """`["a"]` -> `a`; `["a", "b"]` -> `a and b`; `["a", "b", "c"]` -> `a, b and c`."""
    items = [item for item in items if item]
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """`plural(1, "model")` -> `1 model`; `plural(2, "model")` -> `2 models`."""
    word = singular if n == 1 else (plural_form or singular + "s")
    return f"{n:,} {word}"


def slug(text: str) -> str:
    """A name made safe for an element id: `lenet5 <b>` -> `lenet5-b`."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
