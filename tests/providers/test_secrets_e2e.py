"""API keys never leak from a full run: not in any CLI output (the worker's debug log included),
Parquet file, DuckDB file, table row, dead letter or Kafka record, also when a provider rejects
the key it was given (the OpenAI simulator echoes a masked key on a 401, as OpenAI does).

The simulators require SIM_KEY, so every call really presents a key.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from support.frugal_testkit import SIM_KEY
from support.full_run import SIMS, FullRun, full_run, workload

from bus.broker import EmbeddedBroker
from bus.topics import all_topics
from providers.sim.wire import mask_key
from schemas.config import KafkaConfig

WRONG_KEY = "sk-sim-WRONG-fedcba9876543210"
WRONG_KEY_ENV = "FRUGAL_TEST_WRONG_KEY"
# the keys, and the masked form a provider echoes back
FORBIDDEN = (SIM_KEY, WRONG_KEY, mask_key(SIM_KEY), mask_key(WRONG_KEY))


def leaked(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        return [k for k in FORBIDDEN if k.encode() in text]
    return [k for k in FORBIDDEN if k in text]


def parquet_rows(data_dir: Path) -> Iterator[tuple[Path, str]]:
    """Every Parquet file's rows as text: the pages are compressed, so bytes alone prove little."""
    con = duckdb.connect()
    for path in sorted(data_dir.rglob("*.parquet")):
        yield path, repr(con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall())


async def topic_values(bootstrap: str, topics: list[str]) -> list[bytes]:
    """Keys and values of every record on `topics`, read from the start without a group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[bytes] = []
        while batch := await consumer.getmany(timeout_ms=500, max_records=10_000):
            found += [(r.key or b"") + (r.value or b"") for rs in batch.values() for r in rs]
        return found
    finally:
        await consumer.stop()


def assert_nothing_leaked(run: FullRun, prefix: str) -> dict[str, int]:
    """Scan everything the run left; how much of each kind was scanned."""
    for done in run.outputs:
        assert not leaked(done.stdout + done.stderr), done.args
    files = [p for p in run.data_dir.rglob("*") if p.is_file()]
    for path in files:
        assert not leaked(path.read_bytes()), path
    tables = list(parquet_rows(run.data_dir))
    for path, rows in tables:
        assert not leaked(rows), path
    topics = all_topics(KafkaConfig(topic_prefix=prefix))
    records = asyncio.run(topic_values(run.bootstrap, topics))
    for value in records:
        assert not leaked(value), value[:200]
    return {"outputs": len(run.outputs), "files": len(files), "records": len(records)}


def test_a_full_run_leaks_no_key(drained_run: FullRun) -> None:
    scanned = assert_nothing_leaked(drained_run, "full")
    worker_log = drained_run.outputs[1].stderr
    assert " DEBUG " in worker_log  # the drain ran with -v: debug logging was scanned too
    assert any(p.name == "frugal.duckdb" for p in drained_run.data_dir.rglob("*"))
    assert scanned["files"] >= 3 and scanned["records"] >= 500
    assert sum(b["requests"] for b in drained_run.bills.values()) > 500


@pytest.fixture(scope="module")
def wrong_key_run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> FullRun:
    """60 jobs; OpenAI is given a wrong key, so its 20 jobs die of auth errors."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv(WRONG_KEY_ENV, WRONG_KEY)  # the CLI subprocesses inherit it
        run = full_run(
            tmp_path_factory.mktemp("wrong-key"),
            broker.bootstrap,
            "wrongkey",
            SIMS,
            jobs=workload(tickets=36, invoice_jobs=24),
            key_envs={"openai": WRONG_KEY_ENV},
        )
    assert WRONG_KEY_ENV not in os.environ
    run.frugal(["dlq", "list", "--config", str(run.config)])
    return run


def test_a_rejected_key_leaks_neither_key(wrong_key_run: FullRun) -> None:
    assert wrong_key_run.bills["openai"]["auth_failures"] > 0  # the wrong key was sent
    assert wrong_key_run.bills["openai"]["ok"] == 0
    assert_nothing_leaked(wrong_key_run, "wrongkey")


def test_jobs_of_the_rejected_provider_are_dead_letters_with_a_redacted_reason(
    wrong_key_run: FullRun,
) -> None:
    letters = wrong_key_run.sql("SELECT job_id, error_type, error FROM dead_letters")
    openai_jobs = {j["id"] for j in wrong_key_run.jobs if j["providers"] == ["openai"]}
    assert {r["job_id"] for r in letters} == openai_jobs
    auth = [r for r in letters if r["error_type"] == "auth"]
    assert auth, letters
    for letter in auth:  # the provider's echo of the key is masked out of the reason
        assert "Incorrect API key provided: [REDACTED]" in letter["error"], letter
    results = wrong_key_run.sql("SELECT count(*) AS n FROM results")
    assert results[0]["n"] == len(wrong_key_run.jobs) - len(openai_jobs)
    listed = next(done for done in wrong_key_run.outputs if "dlq" in done.args)
    assert listed.returncode == 0 and "auth" in listed.stdout, listed.stdout
