"""kill -9 mid-run: a restarted worker finishes every job, paying again only for calls on the wire.

Runs on the embedded broker and, where FRUGAL_TEST_KAFKA_KIT names the kit, on Kafka 3.1.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Any

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    jsonl,
    lake_query,
    run_frugal,
    start_frugal,
    wait_for,
)
from support.kafka_kit import KafkaKitBroker
from support.worker_runs import assert_each_job_answered_once, one_sim_config

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

JOBS = 1500
KILL_AT = int(JOBS * 0.4)
CONCURRENCY = 8  # calls on the wire at once, 100 ms each
MAX_PAID_TWICE = 2 * CONCURRENCY  # the bound; the journal makes it the calls on the wire


def journal_holds_rows(data: Path) -> bool:
    """A journal segment with rows in it (a flush may delete one while we look)."""
    for segment in (data / "journal").glob("*/*.jsonl"):
        with contextlib.suppress(FileNotFoundError):
            if segment.stat().st_size:
                return True
    return False


@pytest.fixture(scope="module")
def crashed(
    each_broker: EmbeddedBroker | KafkaKitBroker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """1,500 jobs; the worker is SIGKILLed once 40% were paid for; a drain finishes the rest."""
    broker = each_broker
    tmp = tmp_path_factory.mktemp("crash")
    with SimThread(SimConfig(api_key=SIM_KEY, latency_ms=100)) as sim:
        base = sim.base_url
        config = one_sim_config(
            tmp / "frugal.toml",
            prefix=f"crash-{tmp.name}",
            data_dir=tmp / "data",
            sim_base=base,
            broker=broker,
            provider_limits={"max_concurrency": CONCURRENCY},
            # Parquet files every 5 s: without the journal a kill would lose ~400 answers.
            storage={"flush_interval_s": 5.0},
            # Default max_in_flight (256): most records wait behind the provider, unpaid.
        )
        jobs = support_tickets(JOBS)
        published = run_frugal(
            ["publish", "--config", str(config), "-"], bootstrap=broker.bootstrap, stdin=jsonl(jobs)
        )
        assert published.returncode == 0, published.stderr
        worker = start_frugal(
            ["worker", "--config", str(config)], bootstrap=broker.bootstrap, log=tmp / "first.log"
        )
        try:
            # Killed while its journal holds rows no flush has taken yet (right after a flush
            # it may briefly hold none, and there would be nothing to recover).
            wait_for(
                lambda: sim.stats()["ok"] >= KILL_AT and journal_holds_rows(tmp / "data"),
                timeout=60,
                what="40% of the calls, with rows in the journal",
            )
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        calls_at_kill = sim.stats()["requests"]
        results_at_kill = lake_query(tmp / "data", "SELECT count(*) FROM results_all")[0][0]
        journaled = journal_holds_rows(tmp / "data")
        drain = run_frugal(
            ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=120
        )
        assert drain.returncode == 0, drain.stderr[-3000:]
        return {
            "data": tmp / "data",
            "jobs": jobs,
            "calls": sim.stats()["requests"],
            "calls_at_kill": calls_at_kill,
            "results_at_kill": results_at_kill,
            "killed": worker.returncode,
            "journaled": journaled,
            "log": drain.stderr,
        }


def test_the_worker_really_died_mid_run(crashed: dict[str, Any]) -> None:
    assert crashed["killed"] == -signal.SIGKILL
    assert KILL_AT <= crashed["calls_at_kill"] < JOBS
    assert crashed["results_at_kill"] < JOBS


def test_answers_not_yet_in_parquet_were_recovered_from_the_journal(
    crashed: dict[str, Any],
) -> None:
    assert crashed["journaled"]  # the killed worker left rows that only its journal held
    assert "journal: recovered" in crashed["log"]


def test_every_job_has_exactly_one_correct_result(crashed: dict[str, Any]) -> None:
    assert_each_job_answered_once(crashed["data"], crashed["jobs"])


def test_only_calls_that_were_not_yet_durable_were_paid_twice(crashed: dict[str, Any]) -> None:
    paid_twice = crashed["calls"] - JOBS  # the simulator never fails: one call per job
    print(f"paid twice after SIGKILL: {paid_twice} of {JOBS} calls")
    assert 0 <= paid_twice <= MAX_PAID_TWICE
    (usage_rows,) = lake_query(crashed["data"], "SELECT count(*) FROM usage_all")[0]
    assert JOBS <= usage_rows <= crashed["calls"]  # calls lost with the worker went unrecorded
