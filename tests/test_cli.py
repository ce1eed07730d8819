"""The command line as a user meets it: exit codes and one-sentence errors."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest

from dlcompat import cli
from dlcompat.metrics.record import COLUMNS

TINY = """
name = "tiny"
models = ["lenet1"]
[data]
limit_train = 200
limit_test = 50
[train]
epochs = 1
[latency]
warmup = 1
min_repeats = 3
min_time_s = 0.0
"""


def dlcompat(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([sys.executable, "-m", "dlcompat.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})


def one_sentence_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert lines[-1].startswith("error:"), result.stderr  # one line: the sentence is never wrapped
    return lines[-1]


def test_bad_config_exits_2_naming_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = -1\n")
    message = one_sentence_error(dlcompat("run", str(bad), "--out", str(tmp_path / "o")))
    assert "train.epochs" in message


def test_run_help_names_every_preset():
    import inspect

    from dlcompat.study.config import preset_names

    (preset,) = [p for name, p in inspect.signature(cli.run).parameters.items() if name == "preset"]
    helped = preset.default if isinstance(preset.default, str) else str(preset.annotation)
    assert all(name in helped for name in preset_names())


def test_missing_config_and_unknown_preset_exit_2(tmp_path):
    assert "does not exist" in one_sentence_error(dlcompat("run", str(tmp_path / "none.toml")))
    assert "unknown preset" in one_sentence_error(dlcompat("run", "--preset", "nope"))


def test_missing_data_offline_exits_2_and_says_where_to_put_files(tmp_path):
    config = tmp_path / "mnist.toml"
    config.write_text(TINY.replace('name = "tiny"', 'name = "tiny"\ndatasets = ["mnist"]'))
    empty = tmp_path / "empty"
    empty.mkdir()
    result = dlcompat("run", str(config), "--out", str(tmp_path / "o"), "--data-dir", str(empty), "--quiet",
                      env={"DLCOMPAT_DATA_MIRROR": "http://127.0.0.1:9/"})
    message = one_sentence_error(result)
    assert "--data-dir" in message or "DLCOMPAT_DATA_DIR" in message


def test_missing_framework_exits_2_with_the_install_hint(tmp_path, monkeypatch, capsys):
    from dlcompat.envs import registry

    real = registry.probe_modules
    monkeypatch.setattr("dlcompat.study.runner.probe_modules",
                        lambda env, mods: {m: (None if m == "torch" else v) for m, v in real(env, mods).items()})
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    monkeypatch.setattr(sys, "argv", ["dlcompat", "run", str(config), "--out", str(tmp_path / "o"), "--quiet"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "framework 'pytorch'" in err and "torch==2.13.0" in err


def test_report_and_export_without_a_run_exit_2(tmp_path):
    assert "no results database" in one_sentence_error(dlcompat("report", "--out", str(tmp_path)))
    assert "no results database" in one_sentence_error(dlcompat("export", "--out", str(tmp_path)))


def test_findings_without_a_database_exits_2_in_one_sentence(tmp_path):
    message = one_sentence_error(dlcompat("findings", "--out", str(tmp_path)))
    assert "no results database" in message and "dlcompat run --out" in message
    assert "no results database" in one_sentence_error(dlcompat("findings", "latest", "--json", "--out", str(tmp_path)))


@pytest.mark.slow
def test_run_report_export_list_round_trip(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "out"
    first = dlcompat("run", str(config), "--out", str(out), "--quiet")
    assert first.returncode == 0, first.stderr
    assert "report:" in first.stdout and "database:" in first.stdout
    html = next((out / "reports").rglob("report.html"))
    assert "<html" in html.read_text().lower()

    exported = dlcompat("export", "latest", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert tuple(rows[0].keys()) == COLUMNS
    assert {r["metric"] for r in rows} >= {"accuracy", "label_flips", "train_time", "latency_p50"}
    parquet = tmp_path / "r.parquet"
    assert dlcompat("export", "--format", "parquet", "--output", str(parquet), "--out", str(out)).returncode == 0
    import pyarrow.parquet as pq

    assert pq.read_table(parquet).num_rows == len(rows)

    again = dlcompat("run", str(config), "--out", str(out), "--quiet")
    assert again.returncode == 0 and "0 run" in again.stderr

    listing = dlcompat("list")
    assert listing.returncode == 0 and "pytorch" in listing.stdout and "onnxruntime" in listing.stdout
    assert "available" in listing.stdout
