"""The tidy export: every measurement row, columns exactly `COLUMNS`, as CSV or Parquet.

`method` (a dict) is written as compact JSON text in both formats, so a reader needs nothing but a
JSON parser to get it back. Files are written atomically; CSV can also go to standard output.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from dlcompat.metrics.record import COLUMNS

from .atomic import atomic_path, atomic_write_text


def method_json(method: Any) -> str:
    """A row's method as compact JSON (`{}` when it has none); text that already is JSON is kept."""
    if isinstance(method, str):
        return method or "{}"
    return json.dumps(dict(method or {}), separators=(",", ":"), ensure_ascii=False, default=str)


def _seed(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def _value(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def export_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """One row typed for export: exactly COLUMNS, method as JSON, value float|None, seed int|None."""
    out: dict[str, Any] = {}
    for column in COLUMNS:
        value = row.get(column)
        if column == "method":
            out[column] = method_json(value)
        elif column == "value":
            out[column] = _value(value)
        elif column == "seed":
            out[column] = _seed(value)
        else:
            out[column] = _text(value)
    return out


def _write_csv_rows(rows: Iterable[Mapping[str, Any]], handle: TextIO) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        record = export_record(row)
        writer.writerow(["" if record[c] is None else record[c] for c in COLUMNS])


def csv_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """The CSV export as a string (header row first)."""
    buffer = io.StringIO()
    _write_csv_rows(rows, buffer)
    return buffer.getvalue()


def write_csv(rows: Iterable[Mapping[str, Any]], output: Path | None = None) -> Path | None:
    """Write the rows as CSV to `output` (atomically), or to standard output when `output` is None.

    Returns the path written, or None for standard output.
    """
    if output is None:
        _write_csv_rows(rows, sys.stdout)
        sys.stdout.flush()
        return None
    return atomic_write_text(Path(output), csv_text(rows))


def arrow_schema() -> Any:
    """The Parquet schema: strings, `seed` int64 and `value` float64 (both nullable), `method` JSON text."""
    import pyarrow as pa

    types = {"seed": pa.int64(), "value": pa.float64()}
    return pa.schema([pa.field(c, types.get(c, pa.string()), nullable=True) for c in COLUMNS],
                     metadata={b"dlcompat.method": b"JSON text"})


def arrow_table(rows: Iterable[Mapping[str, Any]]) -> Any:
    """The rows as a pyarrow Table with `arrow_schema()`."""
    import pyarrow as pa

    records = [export_record(row) for row in rows]
    schema = arrow_schema()
    return pa.table({c: pa.array([r[c] for r in records], type=schema.field(c).type) for c in COLUMNS},
                    schema=schema)


def write_parquet(rows: Iterable[Mapping[str, Any]], output: Path) -> Path:
    """Write the rows as Parquet to `output` atomically; returns `output`."""
    import pyarrow.parquet as pq

    table = arrow_table(rows)
    output = Path(output)
    with atomic_path(output) as tmp:
        pq.write_table(table, tmp)
    return output


__all__ = ["arrow_schema", "arrow_table", "csv_text", "export_record", "method_json", "write_csv",
           "write_parquet"]
