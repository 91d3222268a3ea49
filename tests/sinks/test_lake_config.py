"""Lake settings: object-store data_dir, the catalog's default, user-scoped budgets."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from pipeline.budgets import Budgets, CallScope
from schemas.config import BudgetConfig, StorageConfig
from sinks import lakehouse
from sinks.errors import QueryError


def test_an_object_store_data_dir_keeps_flush_files_on_the_local_disk() -> None:
    storage = StorageConfig.model_validate(
        {"data_dir": "s3://bucket/prefix/", "local_dir": "/var/frugal", "s3_endpoint": "http://s3"}
    )

    assert storage.lake_url == "s3://bucket/prefix"
    assert storage.data_dir == Path("/var/frugal")
    assert lakehouse.data_path(storage) == "s3://bucket/prefix/"


def test_the_default_catalog_is_sqlite_beside_the_flush_files(tmp_path: Path) -> None:
    storage = StorageConfig(data_dir=tmp_path)

    assert lakehouse.catalog_dsn(storage) == f"sqlite:{tmp_path.resolve() / 'lake.sqlite'}"
    assert lakehouse.data_path(storage) == f"{tmp_path.resolve() / 'compacted'}/"


def test_the_s3_secret_comes_from_the_aws_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-TEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-in-the-config")
    storage = StorageConfig.model_validate(
        {"data_dir": "s3://b/p", "s3_endpoint": "http://127.0.0.1:9000"}
    )

    sql = lakehouse.s3_secret_sql(storage) or ""

    assert "KEY_ID 'AKIA-TEST'" in sql and "SECRET 'not-in-the-config'" in sql
    assert "ENDPOINT '127.0.0.1:9000'" in sql and "USE_SSL false" in sql
    assert "not-in-the-config" not in repr(storage)


async def test_a_user_budget_caps_that_user_only() -> None:
    cap = BudgetConfig(scope="user", match="ann", window="day", limit_usd=1.0)
    budgets = Budgets([cap], hold_wait_s=0)
    ann = CallScope("openai", "gpt-4o-mini", "classify", "acme", "ann")
    bob = CallScope("openai", "gpt-4o-mini", "classify", "acme", "bob")

    assert await budgets.reserve(ann, 0.9) is not None
    assert await budgets.reserve(ann, 0.2) is None
    assert await budgets.reserve(bob, 0.9) is not None


def test_a_catalog_nobody_serves_is_reported_at_once_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("PGPASSWORD", "s3cret-pw")
    storage = StorageConfig(
        data_dir=tmp_path, catalog=f"postgres:host=127.0.0.1 port={port} dbname=lake user=frugal"
    )
    attempts: list[int] = []
    real_connect = lakehouse.connect

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(lakehouse, "connect", counted)

    with pytest.raises(QueryError) as caught:
        lakehouse.open_lake(storage)

    assert len(attempts) == 1  # not a lost creation race: no retries
    assert "s3cret-pw" not in str(caught.value)
    assert str(caught.value).startswith("cannot create the lake: ")
