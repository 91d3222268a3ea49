"""The DuckDB catalog `<data_dir>/frugal.duckdb`: views over the Parquet lake, and queries."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from schemas.config import StorageConfig
from schemas.rows import TABLE_ROWS, UsageRow
from sinks import compaction, lake, lakehouse, snapshot_guard
from sinks.errors import CatalogBusy, QueryError
from sinks.model_quality import model_quality_sql
from sinks.snapshot_guard import StaleRead

# Bump when the view definitions change shape, so existing catalogs are re-created.
CATALOG_VERSION = 3  # 2: the model_quality view; 3: the lake (DuckLake + flush files)
_META_VIEW = "_frugal_catalog"
_IN_PROCESS = threading.RLock()  # opening the catalog file, one thread at a time
_LOCK_RETRIES = 8
_LOCK_MAX_DELAY_S = 1.0
_STALE_RETRIES = 50  # a read reruns at once; compaction rewrites at most once per pass

# The user-facing columns of each view, in contract order; extra columns follow them.
SPEC_COLUMNS: dict[str, tuple[str, ...]] = {
    "results": (
        "job_id", "kind", "tenant", "doc_id", "output", "provider", "model", "attempts",
        "input_tokens", "output_tokens", "cost_usd", "latency_ms", "created_at", "completed_at",
    ),
    "usage": (
        "job_id", "attempt", "kind", "tenant", "provider", "model", "input_tokens",
        "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens",
        "cost_usd", "latency_ms", "outcome", "ts", "worker",
    ),
    "dead_letters": (
        "job_id", "kind", "tenant", "error_type", "error", "attempts", "providers_tried",
        "failed_at", "replay_count",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


# -- view definitions ---------------------------------------------------------------------


def _flush_files(lake_dir: Path, table: str) -> str:
    """Rows of flush files not yet folded into the lake (each file is in exactly one place)."""
    pattern = lake.table_glob(lake_dir, table).replace("'", "''")
    return (
        f"SELECT * EXCLUDE (filename), filename AS _source FROM read_parquet('{pattern}', "
        "hive_partitioning = true, union_by_name = true, filename = true) "
        f"WHERE filename NOT IN (SELECT path FROM {lakehouse.ALIAS}.{lakehouse.FOLDED})"
    )


def _folded(table: str) -> str:
    day = f"CAST({lakehouse.EVENT_TIME[table]} AS DATE) AS date"
    return f"SELECT *, {day} FROM {lakehouse.ALIAS}.{lakehouse.log_table(table)}"


def _spec_first(table: str) -> str:
    columns = ", ".join(SPEC_COLUMNS[table])
    return f"{columns}, * EXCLUDE ({columns})"


def view_statements(lake_dir: Path) -> list[str]:
    """DDL of every view; paths are absolute because DuckDB resolves relative ones against CWD.

    `_<table>_rows` is the union of the folded lake table and the unfolded flush files, with
    `_source` (the flush file a row came from) to break ties deterministically.
    """
    statements = [
        f"CREATE OR REPLACE VIEW _{table}_fresh AS {_flush_files(lake_dir, table)}"
        for table in TABLE_ROWS
    ]
    statements += [
        f"CREATE OR REPLACE VIEW _{table}_rows AS {_folded(table)} "
        f"UNION ALL BY NAME SELECT * FROM _{table}_fresh"
        for table in TABLE_ROWS
    ]
    statements += [
        f"CREATE OR REPLACE VIEW {table}_all AS SELECT {_spec_first(table)} "
        f"FROM (SELECT * EXCLUDE (_source) FROM _{table}_rows)"
        for table in TABLE_ROWS
    ]
    statements += [
        # Latest wins; the flush file name only breaks exact ties, deterministically.
        f"""CREATE OR REPLACE VIEW results AS
        SELECT {_spec_first("results")} FROM (SELECT * EXCLUDE (_source) FROM _results_rows
        QUALIFY row_number() OVER (
            PARTITION BY job_id ORDER BY completed_at DESC NULLS LAST, _source DESC) = 1)""",
        "CREATE OR REPLACE VIEW usage AS SELECT * FROM usage_all",
        # A job is dead while its latest dead-letter row says so (a `resolved` row written at
        # the same instant wins) and no result completed at or after it.
        f"""CREATE OR REPLACE VIEW dead_letters AS
        WITH latest AS (
            SELECT * FROM _dead_letters_rows
            QUALIFY row_number() OVER (
                PARTITION BY job_id
                ORDER BY failed_at DESC NULLS LAST,
                         coalesce(status, 'dead') <> 'dead' DESC,
                         _source DESC) = 1)
        SELECT {_spec_first("dead_letters")} FROM (SELECT * EXCLUDE (_source) FROM latest) AS d
        WHERE coalesce(d.status, 'dead') = 'dead'
          AND NOT EXISTS (
              SELECT 1 FROM results_all AS r
              WHERE r.job_id = d.job_id AND r.completed_at >= d.failed_at)""",
        f"CREATE OR REPLACE VIEW model_quality AS {model_quality_sql('usage_all')}",
        usage_daily_view(),
        f"CREATE OR REPLACE VIEW {_META_VIEW} AS "
        f"SELECT {CATALOG_VERSION} AS version, '{_sql_text(str(lake_dir))}' AS lake_dir",
    ]
    return statements


def usage_daily_view() -> str:
    """Sums folded into the lake plus sums over flush files not folded yet: always = usage."""
    columns = set(UsageRow.arrow_schema.names)
    keys = ", ".join(f'"{k}"' for k in lakehouse.DAILY_KEYS)
    sums = ", ".join(
        f"CAST(sum({s}) AS {'DOUBLE' if s == 'cost_usd' else 'BIGINT'}) AS {s}"
        for s in lakehouse.DAILY_SUMS
    )
    parts = f"{lakehouse.ALIAS}.{lakehouse.DAILY_PARTS}"
    fresh = compaction.daily_sums_over("_usage_fresh", columns)
    return f"""CREATE OR REPLACE VIEW usage_daily AS
        SELECT {keys}, {sums}
        FROM (SELECT * FROM {parts} UNION ALL BY NAME {fresh})
        GROUP BY ALL"""


def _sql_text(value: str) -> str:
    return value.replace("'", "''")


# -- creating the catalog -------------------------------------------------------------------


def ensure_catalog(storage: StorageConfig) -> None:
    """Create the seed files and (re)create the views, holding the catalog's write lock briefly.

    Tolerates other processes: while one holds the lock we retry with backoff, and stop early
    once the catalog turns out to be current already.
    """
    with _IN_PROCESS:  # threads of one process would conflict on the same views
        _create_views(storage)


def _create_views(storage: StorageConfig) -> None:
    lake_dir = storage.lake_dir.resolve()
    lake.ensure_seeds(lake_dir)
    path = storage.catalog_path
    path.parent.mkdir(parents=True, exist_ok=True)
    statements = view_statements(lake_dir)
    lakehouse.open_lake(storage).close()  # the views read its tables
    for attempt in range(_LOCK_RETRIES):
        try:
            con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            if not _is_lock_conflict(exc):
                raise QueryError(f"cannot open catalog {path}: {one_line(exc)}") from exc
            if _is_current(path, lake_dir):
                return
            _backoff(attempt)
            continue
        try:
            lakehouse.attach(con, storage, read_only=False)
            con.execute("BEGIN TRANSACTION")
            for statement in statements:
                con.execute(statement)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            busy = _is_lock_conflict(exc)
            if busy and attempt < _LOCK_RETRIES - 1:
                con.close()
                _backoff(attempt)
                continue
            raise QueryError(f"cannot create catalog views: {one_line(exc)}") from exc
        finally:
            con.close()
        return
    raise CatalogBusy(f"catalog {path} is locked by another process; try again")


def _is_current(path: Path, lake_dir: Path) -> bool:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return False
    try:
        return _views_match(con, lake_dir)
    finally:
        con.close()


def _views_match(con: duckdb.DuckDBPyConnection, lake_dir: Path) -> bool:
    try:
        row = con.execute(f"SELECT version, lake_dir FROM {_META_VIEW}").fetchone()
    except duckdb.Error:
        return False
    return row == (CATALOG_VERSION, str(lake_dir))


def _is_removed_flush_file(exc: duckdb.Error, storage: StorageConfig) -> bool:
    message = str(exc)
    places = (str(storage.lake_dir.resolve()), lakehouse.data_path(storage))
    return "No such file" in message and any(place in message for place in places)


def _is_lock_conflict(exc: duckdb.Error) -> bool:
    # Another process holds the file lock, or this process has it open in the other mode.
    message = str(exc).lower()
    return "lock" in message or "different configuration" in message


def _backoff(attempt: int) -> None:
    time.sleep(min(_LOCK_MAX_DELAY_S, 0.05 * 2**attempt))


# -- reading ------------------------------------------------------------------------------


def query(storage: StorageConfig, sql: str) -> QueryResult:
    """Run SQL on a read-only connection to the catalog, so any number of readers can run.

    A lake catalog busy with a commit (SQLite's lock) is retried with backoff, and so is a
    query that listed a flush file which compaction removed before the query opened it (its
    rows are in the lake by then, so the next run sees them there). A query that may have
    straddled a compaction's rewrite of lake files, or outlived its snapshot, runs again at
    once (sinks/snapshot_guard.py).
    """
    stale_reads = 0
    attempt = 0
    while True:
        try:
            return _query_once(storage, sql)
        except StaleRead as exc:
            stale_reads += 1
            if stale_reads >= _STALE_RETRIES:
                raise CatalogBusy(
                    "compaction kept rewriting the lake during the query; try again"
                ) from exc
            continue  # runs again at once, on the current snapshot
        except duckdb.Error as exc:
            retry = _is_lock_conflict(exc) or _is_removed_flush_file(exc, storage)
            if not retry or attempt == _LOCK_RETRIES - 1:
                raise QueryError(one_line(exc)) from exc
            _backoff(attempt)
            attempt += 1


def _open_for_query(storage: StorageConfig) -> duckdb.DuckDBPyConnection:
    """A read-only connection to current views, the lake attached.

    Threads of one process share one DuckDB instance per file, and with it the lake's
    attachment: they open one at a time (two attaching at once saw a half-attached lake).
    """
    with _IN_PROCESS:
        lake_dir = storage.lake_dir.resolve()
        if not _lake_ready(storage, lake_dir):
            ensure_catalog(storage)
        con = _connect_read_only(storage.catalog_path)
        try:
            if not _views_match(con, lake_dir):  # new version, or the data dir was moved
                con.close()
                ensure_catalog(storage)
                con = _connect_read_only(storage.catalog_path)
            con.execute("SET TimeZone = 'UTC'")
            lakehouse.attach(con, storage, read_only=True)
        except BaseException:
            con.close()
            raise
        return con


def _query_once(storage: StorageConfig, sql: str) -> QueryResult:
    con = _open_for_query(storage)
    try:
        con.execute("BEGIN TRANSACTION")
        snapshot = snapshot_guard.pin_snapshot(con, lakehouse.ALIAS)  # what this query reads
        cursor = con.execute(sql)
        columns = [column[0] for column in cursor.description or []]
        rows = cursor.fetchall() if columns else []
        con.execute("COMMIT")
        snapshot_guard.check_read(con, lakehouse.ALIAS, snapshot)
        return QueryResult(columns=columns, rows=rows)
    finally:
        con.close()


def lake_never_written(storage: StorageConfig) -> bool:
    """Nothing was ever written to this lake: a local one whose catalog was never made and
    that holds no `usage` flush file. A new worker then has nothing to remember from it, and
    need not make the catalog first to find that out (about a second of its start)."""
    if storage.catalog or storage.lake_url:
        return False  # shared or remote: other workers may have written it
    if not lakehouse.sqlite_catalog_missing(storage):
        return False
    seed = lake.seed_path(storage.lake_dir, "usage")
    return all(path == seed for path in (storage.lake_dir / "usage").glob("*/*/*.parquet"))


def _lake_ready(storage: StorageConfig, lake_dir: Path) -> bool:
    if not storage.catalog_path.exists():
        return False
    if lakehouse.sqlite_catalog_missing(storage):
        return False
    return all(lake.seed_path(lake_dir, table).exists() for table in TABLE_ROWS)


def _connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    for attempt in range(_LOCK_RETRIES):
        try:
            return duckdb.connect(str(path), read_only=True)
        except duckdb.Error as exc:
            if not _is_lock_conflict(exc):
                raise QueryError(f"cannot open catalog {path}: {one_line(exc)}") from exc
            _backoff(attempt)
    raise CatalogBusy(f"catalog {path} is being updated by another process; try again")


def one_line(exc: BaseException) -> str:
    """DuckDB's message without the caret diagram, keeping a 'Did you mean' hint."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    hints = [line for line in lines[1:] if line.startswith(("Did you mean", "Candidate"))]
    return " ".join([lines[0], *hints[:1]])
