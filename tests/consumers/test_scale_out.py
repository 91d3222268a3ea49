"""Three workers in one consumer group; one is killed mid-run and the others finish its jobs."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    jsonl,
    run_frugal,
    start_frugal,
    wait_for,
    worker_id,
)
from support.kafka_kit import KafkaKitBroker
from support.worker_runs import (
    assert_each_job_answered_once,
    one_sim_config,
    results_by_worker,
)

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

JOBS = 600
MAX_IN_FLIGHT = 16


@pytest.fixture(scope="module")
def scaled(
    each_broker: EmbeddedBroker | KafkaKitBroker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    broker = each_broker
    tmp = tmp_path_factory.mktemp("scale")
    data = tmp / "data"
    with SimThread(SimConfig(api_key=SIM_KEY, latency_ms=40)) as sim:
        base = sim.base_url
        config = one_sim_config(
            tmp / "frugal.toml",
            prefix=f"scale-out-{tmp.name}",
            data_dir=data,
            sim_base=base,
            broker=broker,
            partitions=6,
            worker={"max_in_flight": MAX_IN_FLIGHT},
        )
        args = ["worker", "--config", str(config)]
        workers = [
            start_frugal(args, bootstrap=broker.bootstrap, log=tmp / f"worker{i}.log")
            for i in range(3)
        ]
        victim = workers[0]
        jobs = support_tickets(JOBS)
        try:
            published = run_frugal(
                ["publish", "--config", str(config), "-"],
                bootstrap=broker.bootstrap,
                stdin=jsonl(jobs),
            )
            assert published.returncode == 0, published.stderr
            wait_for(
                lambda: results_by_worker(data).get(worker_id(victim), 0) >= 30,
                timeout=60,
                what="the first worker to answer some jobs",
            )
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            by_victim = results_by_worker(data).get(worker_id(victim), 0)
            wait_for(
                lambda: sum(results_by_worker(data).values()) >= JOBS,
                timeout=90,
                what="the survivors to finish every job",
            )
        finally:
            if victim.poll() is None:
                victim.kill()
            for worker in workers[1:]:
                worker.send_signal(signal.SIGTERM)
            exits = [worker.wait(timeout=30) for worker in workers[1:]]
        calls = sim.stats()["requests"]
    return {
        "data": data,
        "jobs": jobs,
        "calls": calls,
        "by_victim": by_victim,
        "victim": worker_id(victim),
        "survivors": [worker_id(w) for w in workers[1:]],
        "exits": exits,
        "logs": [(tmp / f"worker{i}.log").read_text() for i in range(3)],
    }


def test_every_job_is_done_once_and_correctly(scaled: dict[str, Any]) -> None:
    assert_each_job_answered_once(scaled["data"], scaled["jobs"])


def test_the_survivors_took_over_the_dead_workers_partitions(scaled: dict[str, Any]) -> None:
    by_worker = results_by_worker(scaled["data"])
    # After its death only its journal (answers not yet in Parquet) reaches the lake.
    assert by_worker[scaled["victim"]] >= scaled["by_victim"] > 0
    assert all(by_worker.get(w, 0) > 0 for w in scaled["survivors"])
    assert sum(by_worker.values()) == JOBS


def test_only_the_dead_workers_calls_in_flight_were_paid_twice(scaled: dict[str, Any]) -> None:
    paid_twice = scaled["calls"] - JOBS
    print(f"paid twice after killing one of three workers: {paid_twice}")
    assert 0 <= paid_twice <= MAX_IN_FLIGHT


def test_the_survivors_shut_down_cleanly(scaled: dict[str, Any]) -> None:
    assert scaled["exits"] == [0, 0]
    for log in scaled["logs"][1:]:
        assert "Traceback" not in log
