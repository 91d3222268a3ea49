"""The compacted lake: a DuckLake (catalog in SQLite or PostgreSQL, data as Parquet) and its DDL.

Workers flush small Parquet files (sinks/parquet.py); compaction (sinks/compaction.py) folds
closed ones into the DuckLake tables below in one transaction. Readers see the union of both,
each flush file exactly once (sinks/catalog.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa

from schemas.config import StorageConfig
from schemas.rows import TABLE_ROWS
from sinks import snapshot_guard
from sinks.errors import QueryError
from sinks.local_lock import local_lock
from sinks.snapshot_guard import StaleRead

logger = logging.getLogger(__name__)

ALIAS = "lake"
FOLDED = "folded_files"  # flush files already folded in: path, folded_at, removed_at
DAILY_PARTS = "usage_daily_parts"  # partial sums, one row per group and fold
ATTRIBUTION = ("tenant", "user", "agent")
DAILY_KEYS = ("day", *ATTRIBUTION, "kind", "provider", "model", "mode")
DAILY_SUMS = (
    "calls", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
    "reasoning_tokens", "cost_usd",
)  # fmt: skip
# The event time that decides a row's day partition, per table.
EVENT_TIME = {"results": "completed_at", "usage": "ts", "dead_letters": "failed_at"}
_EXTENSIONS = {"ducklake": "ducklake", "sqlite_scanner": "sqlite_scanner"}


def log_table(table: str) -> str:
    """The DuckLake table holding a table's folded rows."""
    return f"{table}_log"


def catalog_dsn(storage: StorageConfig) -> str:
    """`sqlite:<path>` (default, next to the flush files) or the configured catalog."""
    if storage.catalog:
        return storage.catalog
    return f"sqlite:{(storage.data_dir / 'lake.sqlite').resolve()}"


def sqlite_catalog_missing(storage: StorageConfig) -> bool:
    """The catalog is a SQLite file that does not exist yet: no lake was ever made here."""
    dsn = catalog_dsn(storage)
    return dsn.startswith("sqlite:") and not Path(dsn.removeprefix("sqlite:")).exists()


def data_path(storage: StorageConfig) -> str:
    if storage.lake_url:
        return storage.lake_url + "/"
    return str((storage.data_dir / "compacted").resolve()) + "/"


def nothing_folded(storage: StorageConfig) -> bool:
    """No fold ever wrote a data file to the lake's local data path: no job id is folded yet.

    Sound for the done set, which asks after reading the flush files: a fold writes its data
    files before any flush file it folded is deleted. Only a lake of one machine (SQLite
    catalog, local data path) is checked this way; any other is never assumed empty (folds
    by other machines write elsewhere: only the lake can say)."""
    if storage.lake_url or not catalog_dsn(storage).startswith("sqlite:"):
        return False
    return not any(path.is_file() for path in Path(data_path(storage)).rglob("*"))


def _extension_file(name: str) -> Path:
    """The extension shipped in its PyPI wheel (the extension repository is not needed)."""
    spec = importlib.util.find_spec(f"duckdb_extension_{name}")
    if spec is None or spec.origin is None:
        raise QueryError(f"DuckDB extension {name} is missing: pip install duckdb-extension-{name}")
    version = f"v{duckdb.__version__}"
    return Path(spec.origin).parent / "extensions" / version / f"{name}.duckdb_extension"


def load_extensions(con: duckdb.DuckDBPyConnection, storage: StorageConfig) -> None:
    names = ["ducklake"]
    dsn = catalog_dsn(storage)
    names.append("postgres_scanner" if dsn.startswith("postgres:") else "sqlite_scanner")
    if storage.lake_url:
        names.append("httpfs")
    for name in names:
        con.execute(f"LOAD '{_sql_text(str(_extension_file(name)))}'")


def s3_secret_sql(storage: StorageConfig) -> str | None:
    """A temporary S3 secret from the standard AWS_* variables and `[storage] s3_endpoint`."""
    if not storage.lake_url:
        return None
    parts = ["TYPE s3", "URL_STYLE 'path'"]
    for env, key in (
        ("AWS_ACCESS_KEY_ID", "KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "SECRET"),
        ("AWS_SESSION_TOKEN", "SESSION_TOKEN"),
        ("AWS_REGION", "REGION"),
    ):
        value = os.environ.get(env) or (
            os.environ.get("AWS_DEFAULT_REGION") if key == "REGION" else None
        )
        if value:
            parts.append(f"{key} '{_sql_text(value)}'")
    if storage.s3_endpoint:
        endpoint = urlsplit(storage.s3_endpoint)
        parts.append(f"ENDPOINT '{_sql_text(endpoint.netloc or endpoint.path)}'")
        parts.append(f"USE_SSL {'true' if endpoint.scheme == 'https' else 'false'}")
    return f"CREATE OR REPLACE TEMPORARY SECRET frugal_s3 ({', '.join(parts)})"


def connect(storage: StorageConfig, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached as `lake` (UTC session time zone)."""
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        attach(con, storage, read_only)
    except duckdb.Error as exc:
        con.close()
        raise QueryError(f"cannot open the lake catalog: {_scrub(exc, storage)}") from exc
    return con


def _prepare_sqlite_catalog(dsn: str) -> None:
    """A new SQLite catalog starts in WAL mode: readers then never wait for a compaction."""
    path = Path(dsn.removeprefix("sqlite:"))
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")


def attach(con: duckdb.DuckDBPyConnection, storage: StorageConfig, read_only: bool) -> None:
    dsn = catalog_dsn(storage)
    if dsn.startswith("sqlite:") and not read_only:
        _prepare_sqlite_catalog(dsn)
    load_extensions(con, storage)
    secret = s3_secret_sql(storage)
    if secret:
        con.execute(secret)
    options = [
        f"DATA_PATH '{_sql_text(data_path(storage))}'",
        "OVERRIDE_DATA_PATH true",  # a moved data_dir keeps working
        "DATA_INLINING_ROW_LIMIT 0",
    ]
    if read_only:
        options = ["READ_ONLY", *options[:2]]
    con.execute(
        f"ATTACH IF NOT EXISTS 'ducklake:{_sql_text(dsn)}' AS {ALIAS} ({', '.join(options)})"
    )


def open_lake(storage: StorageConfig) -> duckdb.DuckDBPyConnection:
    """A writable connection to the lake, its catalog and tables created if missing.

    Many processes may start on a brand-new catalog at once. On one machine they take turns
    (a lock file beside the flush files); across machines (a shared PostgreSQL catalog) the
    one whose commit loses finds, on a retry, what the winner created.
    """
    with local_lock(storage.data_dir, ".lake-create.lock"):
        for attempt in range(_CREATE_RETRIES):
            con: duckdb.DuckDBPyConnection | None = None
            try:
                con = connect(storage)
                ensure_tables(con)
                return con
            except (duckdb.Error, QueryError) as exc:
                if con is not None:
                    con.close()
                if attempt == _CREATE_RETRIES - 1 or not _is_creation_race(exc):
                    raise QueryError(f"cannot create the lake: {_scrub(exc, storage)}") from exc
                time.sleep(min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")  # pragma: no cover


_CREATE_RETRIES = 10
# What losing a race to create the same catalog and tables looks like (SQLite or PostgreSQL).
_RACE_SIGNS = ("commit", "conflict", "already exists", "duplicate key", "unique constraint", "lock")


def _is_creation_race(exc: BaseException) -> bool:
    """A lost creation race is retried; anything else (a wrong DSN, no server, bad
    credentials) is reported at once instead of after ten tries."""
    message = str(exc).lower()
    return any(sign in message for sign in _RACE_SIGNS)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the missing lake tables in one transaction; nothing is written when none is."""
    have = {
        r[0]
        for r in con.execute(
            # No parameters: binding one makes DuckDB import pandas (~0.2 s of a start-up).
            f"SELECT table_name FROM duckdb_tables() WHERE database_name = '{ALIAS}'"
        ).fetchall()
    }
    wanted = {log_table(t) for t in TABLE_ROWS} | {DAILY_PARTS, FOLDED}
    if wanted <= have:
        return  # the usual start: building the DDL would import pandas (through DuckDB)
    statements = [sql for name, sql in _table_ddl() if name not in have]
    con.execute("BEGIN TRANSACTION")
    try:
        for statement in statements:
            con.execute(statement)
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


def _table_ddl() -> list[tuple[str, str]]:
    """(table, statement) for every lake table, partitioned by kind and event day."""
    ddl = []
    for table, row_type in TABLE_ROWS.items():
        columns = [*_columns_sql(row_type.arrow_schema), "_source VARCHAR"]
        name, when = log_table(table), EVENT_TIME[table]
        ddl.append((name, f"CREATE TABLE {ALIAS}.{name} ({', '.join(columns)})"))
        ddl.append((name, f"ALTER TABLE {ALIAS}.{name} SET PARTITIONED BY "
                          f"(kind, year({when}), month({when}), day({when}))"))  # fmt: skip
    keys = [f'"{k}" {"DATE" if k == "day" else "VARCHAR"}' for k in DAILY_KEYS]
    sums = [f'"{s}" {"DOUBLE" if s == "cost_usd" else "BIGINT"}' for s in DAILY_SUMS]
    ddl.append((DAILY_PARTS, f"CREATE TABLE {ALIAS}.{DAILY_PARTS} ({', '.join([*keys, *sums])})"))
    ddl.append((FOLDED, f"CREATE TABLE {ALIAS}.{FOLDED} "
                        "(path VARCHAR, folded_at TIMESTAMPTZ, removed_at TIMESTAMPTZ)"))  # fmt: skip
    return ddl


class FoldedJobIds:
    """Job ids of results folded into the lake, over one read-only connection kept open.

    Attaching the lake costs a few hundred milliseconds (extensions, catalog); a done-jobs
    refresh holds records up while it runs, so it must not pay that on every rebalance. Only
    rows from flush files the caller has not read itself are asked for. The connection lives
    as long as the worker process.
    """

    def __init__(self, storage: StorageConfig) -> None:
        self._storage = storage
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opening = threading.Lock()  # `warm` (a start-up thread) and a refresh's `read`
        self._snapshot: int | None = None  # the lake snapshot the last read saw (or later)

    def warm(self) -> None:
        """Open the connection now (from a thread, at start), so that no refresh pays for it."""
        self._connection()

    def _connection(self) -> duckdb.DuckDBPyConnection | None:
        with self._opening:
            if self._con is None:
                if sqlite_catalog_missing(self._storage):
                    return None  # no lake yet
                with contextlib.suppress(QueryError):  # being created right now: nothing folded
                    self._con = connect(self._storage, read_only=True)
            return self._con

    def read(self, sources_read: set[str]) -> set[str]:
        """Job ids folded from flush files other than `sources_read` since the last read (at
        the lake's snapshot then); empty without a lake or when no snapshot was added since.

        A read that straddled a compaction's rewrite may have missed ids (and a missed id is a
        job paid twice), so it runs again (sinks/snapshot_guard.py).
        """
        if self._con is None and nothing_folded(self._storage):
            return set()  # a new lake: no waiting for the connection `warm` may still be opening
        con = self._connection()
        if con is None:
            return set()
        for _ in range(_STALE_RETRIES):
            try:
                return self._read_once(con, sources_read)
            except StaleRead:
                continue
            except duckdb.Error:
                with contextlib.suppress(duckdb.Error):
                    con.execute("ROLLBACK")
                return set()  # no results table yet
        logger.warning("done jobs: the lake kept being rewritten; reading it on the next refresh")
        self._snapshot = None
        return set()

    def _read_once(self, con: duckdb.DuckDBPyConnection, sources_read: set[str]) -> set[str]:
        con.execute("BEGIN TRANSACTION")
        # ~2 ms, where reading the table is ~20: a rebalance refresh must not hold records.
        snapshot = snapshot_guard.pin_snapshot(con, ALIAS)
        if snapshot is not None and snapshot == self._snapshot:
            con.execute("COMMIT")
            return set()
        rows = con.execute(
            f"SELECT DISTINCT job_id FROM {ALIAS}.{log_table('results')} "
            "WHERE job_id IS NOT NULL AND _source NOT IN (SELECT unnest($read))",
            {"read": sorted(sources_read)},
        ).fetchall()
        con.execute("COMMIT")
        snapshot_guard.check_read(con, ALIAS, snapshot)
        self._snapshot = snapshot
        return {r[0] for r in rows}


_STALE_RETRIES = 20


def add_missing_columns(con: duckdb.DuckDBPyConnection, table: str, source_sql: str) -> None:
    """Columns other features add to a row type flow into the lake table without a migration."""
    have = {r[0] for r in con.execute(f"DESCRIBE {ALIAS}.{log_table(table)}").fetchall()}
    for name, type_name, *_ in con.execute(f"DESCRIBE {source_sql}").fetchall():
        if name not in have:
            con.execute(f'ALTER TABLE {ALIAS}.{log_table(table)} ADD COLUMN "{name}" {type_name}')


def _columns_sql(schema: pa.Schema) -> list[str]:
    con = duckdb.connect()
    try:
        con.register("empty", schema.empty_table())
        return [f'"{r[0]}" {r[1]}' for r in con.execute("DESCRIBE SELECT * FROM empty").fetchall()]
    finally:
        con.close()


def _scrub(exc: BaseException, storage: StorageConfig) -> str:
    """One line, with any credential the catalog DSN or AWS variables carry masked."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    secrets = [os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("PGPASSWORD")]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _sql_text(value: str) -> str:
    return value.replace("'", "''")
