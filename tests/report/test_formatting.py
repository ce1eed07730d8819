"""How numbers are written: by unit, the same in every table, chart and sentence."""

from __future__ import annotations

import pytest

from dlcompat.report.formatting import error_summary, format_value, join_words, significant


@pytest.mark.parametrize(("value", "unit", "metric", "expected"), [
    (0.97222, "fraction", "accuracy", "97.22 %"),
    (248_100, "bytes", "model_size", "248 kB"),
    (27_650, "bytes", "model_size", "27.6 kB"),
    (312, "bytes", "model_size", "312 B"),
    (1.2e9, "bytes", "peak_rss", "1.2 GB"),
    (0.0123, "s", "load_time", "0.0123 s"),
    (1234.5, "s", "train_time", "1,234 s"),
    (0.047, "ms", "latency_p50", "0.047 ms"),
    (3, "count", "label_flips", "3"),
    (3.1e-6, "", "max_abs_logit_diff", "3.1e-6"),
    (2.37, "", "max_abs_logit_diff", "2.4"),
    (0.081, "", "final_train_loss", "0.081"),
    (7.0, "furlongs", "weird", "7 furlongs"),
    (None, "ms", "latency_p50", "—"),
    (float("inf"), "", "max_abs_logit_diff", "inf"),
])
def test_format_value(value: float | None, unit: str, metric: str, expected: str) -> None:
    assert format_value(value, unit, metric) == expected


def test_significant_never_uses_exponents_for_large_values() -> None:
    assert significant(123456.0) == "123,456"
    assert significant(0.00012) == "0.00012"
    assert significant(3.14159e-6) == "3.1e-6"
    assert significant(0.0) == "0"


def test_error_summary_prefers_the_exception_line_of_a_traceback() -> None:
    assert error_summary("Traceback (most recent call last):\n  File x\nValueError: bad") == "ValueError: bad"
    assert error_summary("\nfirst line\nsecond") == "first line"
    assert error_summary("x" * 500, limit=10) == "x" * 9 + "…"
    assert error_summary("") == ""


def test_join_words() -> None:
    assert join_words([]) == ""
    assert join_words(["a"]) == "a"
    assert join_words(["a", "b", "c"]) == "a, b and c"
