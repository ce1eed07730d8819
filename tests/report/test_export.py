"""CSV and Parquet export: exact columns, types that survive a round trip, atomic writes."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dlcompat.metrics.record import COLUMNS, Measurement
from dlcompat.report.export import csv_text, write_csv, write_parquet


def _read_csv(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def test_csv_header_is_columns_in_order_and_values_round_trip(tmp_path: Path, rows: list[dict]) -> None:
    out = write_csv(rows, tmp_path / "results.csv")

    assert out == tmp_path / "results.csv"
    header, records = _read_csv(out.read_text(encoding="utf-8"))
    assert tuple(header) == COLUMNS
    assert len(records) == len(rows)
    for original, record in zip(rows, records, strict=True):
        assert list(record) == list(COLUMNS)
        assert json.loads(record["method"]) == original["method"]
        assert ", " not in record["method"] and '": ' not in record["method"]  # compact separators
        if original["value"] is None:
            assert record["value"] == ""
        else:
            assert float(record["value"]) == original["value"]  # full precision, no rounding
        assert record["seed"] == str(original["seed"])
        assert record["status"] == original["status"]
        assert record["error"] == original["error"]  # multi-line text survives quoting


def test_csv_to_standard_output(capsys: pytest.CaptureFixture[str], rows: list[dict]) -> None:
    assert write_csv(rows, None) is None

    captured = capsys.readouterr().out
    assert captured == csv_text(rows)
    header, records = _read_csv(captured)
    assert tuple(header) == COLUMNS
    assert len(records) == len(rows)


def test_csv_method_is_compact_json(rows: list[dict]) -> None:
    rows = [rows[0] | {"method": {"api": "x", "batch_size": 1}}]
    _, records = _read_csv(csv_text(rows))
    assert records[0]["method"] == '{"api":"x","batch_size":1}'


def test_parquet_round_trip_keeps_types_and_nulls(tmp_path: Path, rows: list[dict]) -> None:
    out = write_parquet(rows, tmp_path / "results.parquet")

    table = pq.read_table(out)
    assert tuple(table.schema.names) == COLUMNS
    assert table.schema.field("seed").type == pa.int64()
    assert table.schema.field("value").type == pa.float64()
    assert table.schema.field("method").type == pa.string()
    assert all(table.schema.field(c).type == pa.string() for c in COLUMNS if c not in ("seed", "value"))
    assert table.num_rows == len(rows)
    back = table.to_pylist()
    for original, record in zip(rows, back, strict=True):
        assert record["value"] == original["value"]  # None stays null
        assert record["seed"] == original["seed"]
        assert json.loads(record["method"]) == original["method"]
        assert record["error"] == original["error"]
    assert table.column("value").null_count == sum(r["value"] is None for r in rows) > 0


def test_parquet_nullable_seed_and_nan(tmp_path: Path, rows: list[dict]) -> None:
    rows = [rows[0] | {"seed": None}, rows[1] | {"value": math.nan}]
    back = pq.read_table(write_parquet(rows, tmp_path / "x.parquet")).to_pylist()
    assert back[0]["seed"] is None
    assert math.isnan(back[1]["value"])


def test_empty_exports_still_have_the_columns(tmp_path: Path) -> None:
    header, records = _read_csv(write_csv([], tmp_path / "empty.csv").read_text())
    assert tuple(header) == COLUMNS and records == []
    table = pq.read_table(write_parquet([], tmp_path / "empty.parquet"))
    assert tuple(table.schema.names) == COLUMNS and table.num_rows == 0


def test_export_accepts_measurement_dicts_without_run_columns(tmp_path: Path) -> None:
    measurement = Measurement("digits", "lenet1", "pytorch", "accuracy", 0.97, "fraction", seed=0)
    header, records = _read_csv(csv_text([measurement.to_dict()]))
    assert tuple(header) == COLUMNS
    assert records[0]["run"] == "" and records[0]["metric"] == "accuracy"


def test_writes_are_atomic(tmp_path: Path, rows: list[dict]) -> None:
    target = tmp_path / "nested" / "results.csv"
    write_csv(rows, target)
    before = target.read_text()

    with pytest.raises(ValueError):
        write_csv([rows[0] | {"seed": "not a number"}], target)
    with pytest.raises(ValueError):
        write_parquet([rows[0] | {"seed": "not a number"}], tmp_path / "nested" / "results.parquet")

    assert target.read_text() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["results.csv"]  # no temporary files left
