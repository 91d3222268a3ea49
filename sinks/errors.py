"""Errors raised by the sinks: failed Parquet writes and failed catalog queries."""

from __future__ import annotations

from schemas.errors import FrugalError


class SinkWriteError(FrugalError):
    """Buffered rows could not be written; they stay buffered and their offsets uncommitted."""

    type = "sink_write_error"


class QueryError(FrugalError):
    """A SQL query on the catalog failed; the message is DuckDB's, on one line."""

    type = "query_error"


class CatalogBusy(QueryError):
    """Another process held the catalog file's lock for longer than we were willing to wait."""

    type = "catalog_busy"
