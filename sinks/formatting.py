"""Rendering query results for people and programs: a rich table, CSV, or one JSON array."""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import shutil
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from sinks.catalog import QueryResult

OutputFormat = Literal["table", "csv", "json"]


def render(result: QueryResult, fmt: OutputFormat, *, width: int | None = None) -> str:
    """The result as text in `fmt`; `width` bounds the table (default: the terminal's)."""
    if fmt == "table":
        return _render_table(result, width)
    if fmt == "csv":
        return _render_csv(result)
    if fmt == "json":
        return _render_json(result)
    raise ValueError(f"unknown format {fmt!r}; expected table, csv or json")


def jsonable(value: Any) -> Any:
    """A JSON-ready copy: ISO 8601 times, decimals as floats, NaN/inf as null, nested as-is."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return str(value)


def _cell_text(value: Any) -> str:
    """One cell as plain text: strings verbatim, nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")  # exact, as stored: 1.50 stays 1.50
    plain = jsonable(value)
    if isinstance(plain, str):
        return plain
    return json.dumps(plain, ensure_ascii=False)


def _render_json(result: QueryResult) -> str:
    objects = [
        {column: jsonable(value) for column, value in zip(result.columns, row, strict=True)}
        for row in result.rows
    ]
    return json.dumps(objects, ensure_ascii=False)


def _render_csv(result: QueryResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for row in result.rows:
        writer.writerow([_cell_text(value) for value in row])
    return out.getvalue()


def _render_table(result: QueryResult, width: int | None) -> str:
    table = Table(box=box.SIMPLE_HEAD, caption=_row_count(len(result.rows)))
    numeric = [_is_numeric_column(result, i) for i in range(len(result.columns))]
    for column, is_number in zip(result.columns, numeric, strict=True):
        table.add_column(Text(column), justify="right" if is_number else "left")
    for row in result.rows:
        # Text() keeps cell values literal: no rich markup interpretation of "[...]".
        table.add_row(*(_table_cell(value) for value in row))
    console = Console(
        file=io.StringIO(),
        width=width or shutil.get_terminal_size((120, 24)).columns,
        color_system=None,
        force_terminal=False,
        highlight=False,
    )
    console.print(table)
    return console.file.getvalue()  # type: ignore[attr-defined]


def _table_cell(value: Any) -> Text:
    if value is None:
        return Text("NULL", style="dim")
    return Text(_cell_text(value))


def _is_numeric_column(result: QueryResult, index: int) -> bool:
    values = [row[index] for row in result.rows if row[index] is not None]
    return bool(values) and all(
        isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in values
    )


def _row_count(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"
