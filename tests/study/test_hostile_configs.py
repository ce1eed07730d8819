"""Hostile study configs through the real command line: each is one sentence naming the key, exit 2, no job.

Hypothesis writes broken configs (wrong types, unknown keys, numbers out of range, empty lists, huge
values, bytes that are not UTF-8, values nested thousands of levels deep) to a TOML file, and
`dlcompat run FILE --out DIR` runs in this process through `dlcompat.cli.main`, as the installed
command does. Every one must exit 2 with exactly one line on standard error that names the offending
key, and must not start: no output folder, no results database.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlcompat import cli
from dlcompat.study.config import INT_MAX, INT_MIN, MAX_NAME, StudyConfig, key_text, parse_config

#: a small valid study: every case breaks exactly one thing of it
BASE: dict[str, Any] = {
    "name": "hostile", "models": ["lenet1"], "seeds": [0],
    "data": {"limit_train": 50, "limit_test": 20},
    "train": {"epochs": 1, "optimizer": "sgd"},
    "latency": {"warmup": 1, "min_repeats": 3},
    "attacks": {"images": 10},
}
SECTIONS = ("data", "train", "latency", "attacks")

#: whole-number settings and their lower bounds (the seeds also have an upper one: 2**31 - 1)
INTS: dict[tuple[str, ...], int] = {
    ("threads",): 1, ("retries",): 0, ("calibration_images",): 1,
    ("data", "limit_train"): 1, ("data", "limit_test"): 1, ("data", "split_seed"): 0,
    ("train", "epochs"): 1, ("train", "batch_size"): 1,
    ("latency", "batch_size"): 1, ("latency", "warmup"): 0, ("latency", "min_repeats"): 1,
    ("attacks", "images"): 1, ("attacks", "batch_size"): 1, ("attacks", "steps"): 1,
    ("attacks", "cw_binary_search_steps"): 1, ("attacks", "cw_steps"): 1, ("attacks", "deepfool_steps"): 1,
    ("attacks", "deepfool_classes"): 2,
}
#: real-number settings: (low, low allowed, high or None, high allowed)
FLOATS: dict[tuple[str, ...], tuple[float, bool, float | None, bool]] = {
    ("timeout_s",): (0, False, None, False), ("memory_limit_mb",): (0, True, None, False),
    ("train_gpus",): (0, True, None, False), ("data", "val_fraction"): (0, True, 1, False),
    ("train", "lr"): (0, False, None, False), ("train", "momentum"): (0, True, 1, False),
    ("train", "weight_decay"): (0, True, None, False), ("train", "lr_gamma"): (0, False, None, False),
    ("latency", "warmup_time_s"): (0, True, None, False), ("latency", "min_time_s"): (0, True, None, False),
    ("latency", "ci_level"): (0.5, True, 1, False), ("latency", "max_ci_rel_width"): (0, False, None, False),
    ("latency", "max_time_s"): (0, False, None, False),
    ("attacks", "step_fraction"): (0, False, None, False), ("attacks", "cw_confidence"): (0, True, None, False),
    ("attacks", "cw_learning_rate"): (0, False, None, False), ("attacks", "cw_initial_const"): (0, False, None, False),
    ("attacks", "deepfool_overshoot"): (0, True, None, False), ("attacks", "jsma_theta"): (0, False, None, False),
    ("attacks", "jsma_gamma"): (0, False, 1, True),
}
STRINGS = (("name",), ("description",))
CHOICES = (("train", "optimizer"), ("train", "lr_schedule"), ("train", "augmentation"))
BOOLS = (("check_reproducibility",), ("attacks", "random_init"))
NAME_LISTS = (("datasets",), ("models",), ("frameworks",), ("runtimes",), ("migration",), ("attacks", "methods"))
NUMBER_LISTS = (("seeds",), ("train", "lr_milestones"), ("attacks", "epsilons"))
NON_EMPTY = (("datasets",), ("models",), ("frameworks",), ("seeds",))
OTHERS = (("converters",), ("train", "per_model"), ("attacks", "transfer"), ("check",))
EVERY_KEY = (*INTS, *FLOATS, *STRINGS, *CHOICES, *BOOLS, *NAME_LISTS, *NUMBER_LISTS, *OTHERS)
KINDS = ("wrong type", "unknown key", "out of range", "empty list", "huge value", "not UTF-8", "deep nesting")


@dataclass(frozen=True)
class Raw:
    """TOML text written as it is (what a Python value cannot carry: 5,000 digits, 2,000 brackets)."""

    text: str


@dataclass
class Case:
    kind: str
    path: tuple[str, ...]  # the offending key
    value: Any = None
    bad_bytes: bytes = b""
    doc: dict[str, Any] = field(default_factory=dict)


def toml_string(text: str) -> str:
    """A TOML basic string (written here, not by the code under test)."""
    escaped = {'"': '\\"', "\\": "\\\\"}
    return '"' + "".join(escaped.get(c) or (c if c.isprintable() else f"\\U{ord(c):08x}") for c in text) + '"'


def toml_key(key: str) -> str:
    return key if key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key) else toml_string(key)


def toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else {math.inf: "inf", -math.inf: "-inf"}.get(value, repr(value))
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(doc: dict[str, Any]) -> str:
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for section, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{toml_key(section)}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def with_value(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    if len(path) == 1:
        doc[path[0]] = value
    else:
        doc.setdefault(path[0], {})[path[1]] = value
    return doc


# --- the strategies -----------------------------------------------------------------------------------
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
DATES = st.sampled_from([Raw("1979-05-27T07:32:00Z"), Raw("1979-05-27"), Raw("07:32:00")])
SCALARS = st.one_of(st.booleans(), st.integers(INT_MIN, INT_MAX), st.floats(allow_nan=False), TEXT, DATES)
ANY_VALUE = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(TEXT, SCALARS, max_size=2))


def wrong_for(path: tuple[str, ...]) -> st.SearchStrategy[Any]:
    """Values of a type the setting does not take."""
    tables = st.dictionaries(TEXT, SCALARS, min_size=1, max_size=2)
    if path in INTS:
        return st.one_of(TEXT, st.booleans(), st.floats(), st.lists(st.integers(), max_size=2), tables, DATES)
    if path in FLOATS:
        return st.one_of(TEXT, st.booleans(), st.lists(st.floats(), max_size=2), tables, DATES)
    if path in STRINGS or path in CHOICES:
        return st.one_of(st.integers(INT_MIN, INT_MAX), st.floats(), st.booleans(), st.lists(TEXT, max_size=2),
                         tables, DATES)
    if path in BOOLS:
        return st.one_of(st.integers(INT_MIN, INT_MAX), TEXT, st.floats(), st.lists(st.booleans(), max_size=2),
                         DATES)
    if path in NAME_LISTS:  # not a list, or a list of what is not a name
        return st.one_of(TEXT, st.integers(INT_MIN, INT_MAX), tables,
                         st.lists(st.one_of(st.integers(INT_MIN, INT_MAX), st.booleans(), st.lists(TEXT)),
                                  min_size=1, max_size=3))
    if path in NUMBER_LISTS:
        return st.one_of(TEXT, st.integers(INT_MIN, INT_MAX), tables,
                         st.lists(st.one_of(TEXT, st.booleans(), st.lists(st.integers())), min_size=1, max_size=3))
    # the tables and the union: converters, per_model, transfer, check (a table of a `dlcompat check`)
    return st.one_of(st.integers(INT_MIN, INT_MAX), st.floats(), st.lists(st.integers(), min_size=1, max_size=2))


def out_of_range(path: tuple[str, ...]) -> st.SearchStrategy[Any]:
    if path in INTS:
        high = INT_MAX if path in (("data", "split_seed"),) else None
        below = st.integers(INT_MIN, INTS[path] - 1)
        return below if high is None else st.one_of(below, st.integers(high + 1, 2**63))
    low, low_ok, high, high_ok = FLOATS[path]
    below = st.floats(max_value=low, allow_nan=False, allow_infinity=False).filter(
        lambda x: x < low or (x == low and not low_ok))
    if high is None:
        return below
    above = st.floats(min_value=high, allow_nan=False, allow_infinity=False).filter(
        lambda x: x > high or (x == high and not high_ok))
    return st.one_of(below, above)


def huge(path: tuple[str, ...]) -> st.SearchStrategy[Any]:
    digits = st.integers(4301, 6000).map(lambda n: Raw("9" * n))
    big_ints = st.one_of(st.integers(min_value=INT_MAX + 1), st.integers(max_value=INT_MIN - 1), digits)
    if path in INTS:
        return big_ints
    if path in FLOATS:
        return st.one_of(st.sampled_from([math.inf, -math.inf, math.nan, Raw("1e400"), Raw("-1e400")]), big_ints)
    if path == ("name",):
        return st.integers(MAX_NAME + 1, 50_000).map(lambda n: "n" * n)
    if path in NUMBER_LISTS:
        return big_ints.map(lambda v: [v])
    return st.integers(10_000, 200_000).map(lambda n: ["x" * n])  # a name no registry knows


@st.composite
def hostile_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(KINDS))
    if kind == "wrong type":
        path = draw(st.sampled_from([*EVERY_KEY, *((s,) for s in SECTIONS)]))
        return Case(kind, path, draw(wrong_for(path) if path not in [(s,) for s in SECTIONS]
                                     else st.one_of(st.integers(), TEXT, st.lists(st.integers(), max_size=2))))
    if kind == "unknown key":
        section = draw(st.sampled_from(("", *SECTIONS)))
        known = set(StudyConfig.model_fields) if not section else set(
            StudyConfig.model_fields[section].annotation.model_fields)  # type: ignore[union-attr]
        name = draw(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
                    .filter(lambda k: k not in known))
        return Case(kind, (section, name) if section else (name,), draw(ANY_VALUE))
    if kind == "out of range":
        path = draw(st.sampled_from([*INTS, *FLOATS]))
        return Case(kind, path, draw(out_of_range(path)))
    if kind == "empty list":
        return Case(kind, draw(st.sampled_from(NON_EMPTY)), [])
    if kind == "huge value":
        path = draw(st.sampled_from([*INTS, *FLOATS, ("name",), *NAME_LISTS, *NUMBER_LISTS]))
        return Case(kind, path, draw(huge(path)))
    if kind == "not UTF-8":
        path = draw(st.sampled_from([("name",), ("description",), ("models",), ("train", "optimizer")]))
        bad = draw(st.sampled_from([b"\xff", b"\xfe\xff", b"\x80", b"\xc3\x28", b"\xe2\x28\xa1", b"\xed\xa0\x80",
                                    b"\xf5\x80\x80\x80", b"\xc0\xaf", b"\xf0\x9f\x98"]))
        before, after = draw(st.binary(max_size=8)), draw(st.binary(max_size=8))
        return Case(kind, path, bad_bytes=before.hex().encode() + bad + after.hex().encode())
    depth = draw(st.integers(2, 3000))  # deep nesting: a few levels, or more than any parser's stack
    path = draw(st.sampled_from([*EVERY_KEY, *((s,) for s in SECTIONS)]))
    shape = draw(st.sampled_from(["[", "{a = "]))
    return Case(kind, path, Raw(shape * depth + "1" + ("]" if shape == "[" else "}") * depth))


def write(case: Case, folder: Path) -> Path:
    config = folder / "study.toml"
    if case.kind == "not UTF-8":
        marker = "MARKER-NOT-UTF8"
        value = [marker] if case.path == ("models",) else marker
        text = toml_document(with_value(case.path, value)).encode()
        config.write_bytes(text.replace(marker.encode(), case.bad_bytes))
    else:
        config.write_text(toml_document(with_value(case.path, case.value)), encoding="utf-8")
    return config


def run_cli(*args: str) -> tuple[int, str, str]:
    """`dlcompat ARGS` in this process, as the installed command runs it: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), pytest.raises(SystemExit) as info:
        cli.main(list(args))
    return int(info.value.code or 0), out.getvalue(), err.getvalue()


def names_key(line: str, path: tuple[str, ...]) -> bool:
    """The line names the key: `train.epochs` (or an item of it, `seeds.0`), or, where a whole table's rule
    failed, the table and then the key (`train` lr_milestones apply only to ...)."""
    table_rule = len(path) > 1 and f"`{key_text(list(path[:-1]))}` {key_text([path[-1]])} " in line
    return f"`{key_text(list(path))}" in line or table_rule


def check(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config, out = write(case, Path(tmp)), Path(tmp) / "out"
        code, stdout, stderr = run_cli("run", str(config), "--out", str(out), "--quiet")
        lines = [line for line in stderr.split("\n") if line.strip()]
        assert code == 2, (case, stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, stderr)
        assert names_key(lines[0], case.path), (case, lines[0])
        assert "Traceback" not in stderr and stdout == ""
        assert not out.exists(), "a job started: the output folder was created"


def test_the_base_config_is_valid_and_the_key_list_is_the_schema():
    parse_config(toml_document(BASE))
    schema = {(k,) for k in StudyConfig.model_fields if k not in SECTIONS}
    schema |= {(s, k) for s in SECTIONS for k in StudyConfig.model_fields[s].annotation.model_fields}  # type: ignore[union-attr]
    assert schema == set(EVERY_KEY)


def test_keys_are_named_as_toml_writes_them():
    for name in ["epochs", "torch.onnx", "a b", 'q"uote', "back\\slash", "new\nline", "\x00", "\u2028", "é", "`x`"]:
        assert tomllib.loads(f"{key_text([name])} = 1") == {name: 1}
        assert "\n" not in key_text([name]) and key_text([name]).isprintable()


def test_hostile_configs_exit_2_with_one_line_naming_the_key():
    seen: list[str] = []

    @settings(max_examples=300, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(hostile_cases())
    def hostile(case: Case) -> None:
        seen.append(case.kind)
        check(case)

    hostile()
    assert len(seen) >= 200 and set(seen) == set(KINDS), {k: seen.count(k) for k in KINDS}


@pytest.mark.parametrize("text", [
    "seeds = " + "[" * 5000 + "]" * 5000,
    "[train]\nepochs = " + "{a = " * 2000 + "1" + "}" * 2000,
])
def test_values_nested_past_the_parsers_stack_name_their_key(text, tmp_path):
    config = tmp_path / "deep.toml"
    config.write_text(text)
    code, _, stderr = run_cli("run", str(config), "--out", str(tmp_path / "out"))
    assert code == 2 and stderr.count("\n") == 1 and "nests" in stderr
    assert ("`seeds`" if text.startswith("seeds") else "`train.epochs`") in stderr
