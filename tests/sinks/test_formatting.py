"""Rendering query results as a table, CSV, or one JSON array."""

from __future__ import annotations

import csv
import io
import json

import pytest

from schemas.config import StorageConfig
from sinks.catalog import QueryResult, query
from sinks.formatting import render

TYPED_ROW = """
SELECT 'a' AS name, 1.50::DECIMAL(6, 2) AS price, 3 AS n,
       TIMESTAMPTZ '2024-05-01 12:00:00+00' AS at, DATE '2024-05-01' AS day,
       ['x', 'y'] AS tags, NULL AS nothing
"""


def test_json_is_one_array_of_row_objects(storage: StorageConfig) -> None:
    text = render(query(storage, TYPED_ROW + " UNION ALL " + TYPED_ROW), "json")

    parsed = json.loads(text)
    assert isinstance(parsed, list) and len(parsed) == 2
    assert parsed[0] == {
        "name": "a",
        "price": 1.5,
        "n": 3,
        "at": "2024-05-01T12:00:00+00:00",
        "day": "2024-05-01",
        "tags": ["x", "y"],
        "nothing": None,
    }


def test_json_of_no_rows_is_an_empty_array(storage: StorageConfig) -> None:
    assert render(query(storage, "SELECT * FROM results"), "json") == "[]"


def test_json_turns_non_finite_floats_into_null() -> None:
    result = QueryResult(columns=["x"], rows=[(float("nan"),), (float("inf"),)])

    assert json.loads(render(result, "json")) == [{"x": None}, {"x": None}]


def test_csv_has_a_header_then_one_line_per_row(storage: StorageConfig) -> None:
    text = render(query(storage, TYPED_ROW), "csv")

    assert list(csv.reader(io.StringIO(text))) == [
        ["name", "price", "n", "at", "day", "tags", "nothing"],
        ["a", "1.50", "3", "2024-05-01T12:00:00+00:00", "2024-05-01", '["x", "y"]', ""],
    ]


def test_table_shows_columns_values_and_a_row_count(storage: StorageConfig) -> None:
    text = render(query(storage, TYPED_ROW), "table", width=200)

    for expected in ("name", "price", "1.50", "2024-05-01T12:00:00+00:00", "NULL", "1 row"):
        assert expected in text


def test_table_cells_are_literal_text_not_markup() -> None:
    result = QueryResult(columns=["[b]col[/b]"], rows=[("[red]alert[/red]",)])

    text = render(result, "table", width=80)

    assert "[red]alert[/red]" in text and "[b]col[/b]" in text


def test_unknown_formats_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(QueryResult(columns=[], rows=[]), "xml")  # type: ignore[arg-type]
