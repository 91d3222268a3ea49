"""Helpers for end-to-end tests: config files for simulated providers and running `frugal`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import tomli_w
from aiokafka import AIOKafkaProducer

REPO = Path(__file__).resolve().parents[2]
SIM_KEY = "sk-sim-SECRET-0123456789abcdef"  # the tests' provider key: must never leak


def sim_providers(base_urls: dict[str, str], **limits: Any) -> list[dict[str, Any]]:
    """One provider per protocol, each at its own simulator base URL."""
    shapes = {
        "openai": ("openai", "/v1"),
        "anthropic": ("anthropic", "/v1"),
        "gemini": ("gemini", "/v1beta"),
    }
    providers = []
    for name, base in base_urls.items():
        kind, path = shapes[name.split("-")[0]]
        providers.append(
            {
                "name": name,
                "kind": kind,
                "base_url": base + path,
                "api_key_env": "FRUGAL_TEST_KEY",
                "max_concurrency": 64,
                "timeout_s": 10,
                **limits,
            }
        )
    return providers


def default_models(
    openai: str = "openai", anthropic: str = "anthropic", gemini: str = "gemini"
) -> list[dict[str, Any]]:
    return [
        {
            "name": "gpt-4.1-nano",
            "provider": openai,
            "model": "gpt-4.1-nano",
            "tier": 1,
            "capabilities": ["json_schema", "tools"],
        },
        {
            "name": "gemini-2.0-flash-lite",
            "provider": gemini,
            "model": "gemini-2.0-flash-lite",
            "tier": 1,
            "capabilities": ["json_schema"],
        },
        {
            "name": "gpt-4o-mini",
            "provider": openai,
            "model": "gpt-4o-mini",
            "tier": 2,
            "capabilities": ["json_schema", "tools"],
        },
        {
            "name": "claude-3-5-haiku",
            "provider": anthropic,
            "model": "claude-3-5-haiku-latest",
            "tier": 2,
            "capabilities": ["tools"],
        },
        {
            "name": "gpt-4o",
            "provider": openai,
            "model": "gpt-4o",
            "tier": 3,
            "capabilities": ["json_schema", "tools"],
        },
    ]


def write_config(
    path: Path,
    *,
    prefix: str,
    data_dir: Path,
    providers: list[dict[str, Any]],
    models: list[dict[str, Any]],
    **sections: Any,
) -> Path:
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap": "embedded",
            "topic_prefix": prefix,
            "group_id": f"{prefix}-workers",
            "partitions": 2,
            "commit_interval_s": 0.2,
            "session_timeout_s": 3,
        },
        "storage": {"data_dir": str(data_dir), "flush_interval_s": 0.2},
        "worker": {"status_interval_s": 2.0, "shutdown_grace_s": 10.0},
        "retry": {"base_delay_s": 0.05, "max_delay_s": 0.5},
        "providers": providers,
        "models": models,
        "routes": {
            "classify": {"min_tier": 1},
            "extract": {"min_tier": 1},
            "generate": {"min_tier": 1},
        },
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(tomli_w.dumps(config))
    return path


def worker_id(process: subprocess.Popen[bytes]) -> str:
    """The `worker` column of the rows a `frugal worker` process writes."""
    return f"{socket.gethostname()}-{process.pid}"


def kafka_settings(broker: object) -> dict[str, Any]:
    """[kafka] settings a broker needs: Apache Kafka refuses sessions under 6 s
    (group.min.session.timeout.ms); the tests' 3 s keeps failovers quick on the embedded one."""
    return {"session_timeout_s": 6} if type(broker).__name__ == "KafkaKitBroker" else {}


def frugal_env(bootstrap: str) -> dict[str, str]:
    return {
        **os.environ,
        "FRUGAL_KAFKA_BOOTSTRAP": bootstrap,
        "FRUGAL_TEST_KEY": SIM_KEY,
        "PYTHONUNBUFFERED": "1",
    }


def run_frugal(
    args: list[str],
    *,
    bootstrap: str,
    stdin: str | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=frugal_env(bootstrap),
        cwd=cwd or REPO,
    )


def start_frugal(args: list[str], *, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    fh = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=frugal_env(bootstrap),
        cwd=REPO,
    )


def jsonl(jobs: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(j) + "\n" for j in jobs)


def lake_query(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the lake, read directly (independent of the catalog's views under test):
    the flush files not folded yet, plus the DuckLake tables compaction folded them into."""
    from schemas.config import StorageConfig
    from sinks import lakehouse

    con = duckdb.connect()
    lake = data_dir / "lake"
    storage = StorageConfig(data_dir=data_dir)
    folded = (data_dir / "lake.sqlite").exists()
    if folded:
        try:
            lakehouse.attach(con, storage, read_only=True)
        except duckdb.Error:  # a worker is creating it right now: nothing folded yet
            folded = False
    if folded:
        tables = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'lake' "
            "AND table_name = 'folded_files'"
        ).fetchone()
        folded = bool(tables and tables[0])
    for table in ("results", "usage", "dead_letters"):
        files = f"SELECT * FROM read_parquet('{lake}/{table}/*/*/*.parquet', hive_partitioning=true, union_by_name=true, filename=true)"
        if folded:
            files += " WHERE filename NOT IN (SELECT path FROM lake.folded_files)"
            files = f"SELECT * EXCLUDE (filename, date) FROM ({files}) UNION ALL BY NAME SELECT * EXCLUDE (_source) FROM lake.{table}_log"
        else:
            files = f"SELECT * EXCLUDE (filename, date) FROM ({files})"
        con.execute(f"CREATE VIEW {table}_all AS {files}")
    return con.execute(sql).fetchall()


def wait_for(condition: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def publish_raw(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Records as raw bytes, past `frugal publish` (which would refuse the bad ones)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()
