"""Layout of the Parquet lake on disk: partition paths, globs, seed files and atomic writes."""

from __future__ import annotations

import json
import operator
import os
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.rows import TABLE_ROWS, Row

COMPRESSION = "zstd"
SEED_KIND = "_seed"
SEED_DATE = "1970-01-01"

# The event time that decides a row's date partition, per table.
PARTITION_TIME: dict[str, str] = {
    "results": "completed_at",
    "usage": "ts",
    "dead_letters": "failed_at",
}


def row_date(row: Row) -> date:
    """The UTC date of a row's event time (naive datetimes are taken as UTC)."""
    moment = getattr(row, PARTITION_TIME.get(row.table, ""), None)
    if not isinstance(moment, datetime):
        return datetime.now(UTC).date()
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(UTC).date()


def partition_dir(lake_dir: Path, table: str, kind: str, day: date | str) -> Path:
    """`<lake>/<table>/kind=<kind>/date=<YYYY-MM-DD>`, kind percent-encoded (DuckDB decodes it)."""
    return lake_dir / table / f"kind={quote(kind, safe='')}" / f"date={day}"


def table_glob(lake_dir: Path, table: str) -> str:
    """The absolute glob matching every data (and seed) file of one table."""
    return str(lake_dir.resolve() / table / "kind=*" / "date=*" / "*.parquet")


def seed_path(lake_dir: Path, table: str) -> Path:
    return partition_dir(lake_dir, table, SEED_KIND, SEED_DATE) / "seed.parquet"


def ensure_seeds(lake_dir: Path) -> None:
    """Write an empty Parquet file per table so its glob always matches and has every column."""
    for table, row_type in TABLE_ROWS.items():
        path = seed_path(lake_dir, table)
        if path.exists() and _schema_of(path) == row_type.arrow_schema:
            continue
        make_dirs(path.parent)
        write_parquet_atomically(row_type.arrow_schema.empty_table(), path)
        fsync_dir(path.parent)


def _schema_of(path: Path) -> pa.Schema | None:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException):
        return None


def rows_to_table(rows: list[Row], schema: pa.Schema) -> pa.Table:
    """Column-wise conversion: one pass over the rows per column beats `from_pylist` of dicts."""
    if rows and type(rows[0]).as_record is Row.as_record:
        # Plain fields: reading them from each row's __dict__ is ~4x faster than a model_dump
        # per row (and ~1.5x faster than getattr).
        fields = [row.__dict__ for row in rows]
        if len(schema.names) > 1 and set(schema.names) <= fields[0].keys():  # one row type a table
            # One C-level pass: every row's values in column order, then transposed by zip.
            values = map(operator.itemgetter(*schema.names), fields)
            columns = dict(zip(schema.names, map(list, zip(*values, strict=True)), strict=True))
        else:
            columns = {name: [f.get(name) for f in fields] for name in schema.names}
    else:
        records = [row.as_record() for row in rows]
        columns = {name: [record.get(name) for record in records] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema)


def split_convertible(rows: list[Row], schema: pa.Schema) -> tuple[list[Row], list[Row]]:
    """Separate the rows Arrow can convert from the ones it cannot (a bug, not bad luck)."""
    fits: list[Row] = []
    misfits: list[Row] = []
    for row in rows:
        try:
            rows_to_table([row], schema)
        except (pa.ArrowException, ValueError, TypeError, OverflowError):
            misfits.append(row)
        else:
            fits.append(row)
    return fits, misfits


def quarantine(data_dir: Path, name: str, rows: list[Row]) -> Path:
    """Keep rows that cannot be written to the lake as JSON Lines under `<data_dir>/quarantine`."""
    directory = data_dir / "quarantine"
    make_dirs(directory)
    path = directory / name
    tmp = path.with_name(f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"table": row.table, "row": row.model_dump(mode="json")}) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)
    return path


def write_parquet_atomically(table: pa.Table, path: Path) -> None:
    """Write `path` so readers see either nothing or the whole file: temp name, fsync, rename.

    The caller fsyncs the directory afterwards (once per directory, not per file).
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression=COMPRESSION)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_dirs(directory: Path) -> None:
    """`mkdir -p`, fsyncing the parent of each directory created so its entry survives a crash."""
    missing: list[Path] = []
    probe = directory
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for created in reversed(missing):
        created.mkdir(exist_ok=True)
        fsync_dir(created.parent)


def fsync_dir(directory: Path) -> None:
    """Persist a directory's entries (a rename is only durable once its directory is synced)."""
    if not hasattr(os, "O_DIRECTORY"):  # pragma: no cover - Windows has no directory fsync
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
