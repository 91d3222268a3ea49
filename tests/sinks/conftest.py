"""Fixtures for the sink tests: a storage config in tmp_path and factories for table rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.rowkit import DataFiles, Rows

from schemas.config import StorageConfig


@pytest.fixture
def rows() -> Rows:
    return Rows()


@pytest.fixture
def storage(tmp_path: Path) -> StorageConfig:
    # Long interval, high threshold: tests flush explicitly unless they say otherwise.
    # No journal: these tests are about Parquet flushes acking (test_journal.py has the rest).
    return StorageConfig(
        data_dir=tmp_path / "data", flush_interval_s=3600, flush_rows=10_000, journal=False
    )


@pytest.fixture
def data_files(storage: StorageConfig) -> DataFiles:
    """Data files in the lake (seeds excluded), sorted; optionally of one table."""

    def list_files(table: str | None = None) -> list[Path]:
        root = storage.lake_dir / table if table else storage.lake_dir
        return sorted(p for p in root.rglob("*.parquet") if p.name != "seed.parquet")

    return list_files
