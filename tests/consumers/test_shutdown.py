"""SIGTERM mid-run: in-flight work finishes (or parks), is flushed and committed, exit 0 in time."""

from __future__ import annotations

import signal
import time
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
from support.worker_runs import assert_each_job_answered_once, one_sim_config, result_count

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

JOBS = 300
GRACE_S = 6.0


@pytest.fixture(scope="module")
def stopped(
    each_broker: EmbeddedBroker | KafkaKitBroker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    broker = each_broker
    tmp = tmp_path_factory.mktemp("shutdown")
    data = tmp / "data"
    # Slow calls and some 5xx with multi-second backoffs: at SIGTERM there is work in flight and
    # work waiting out a backoff (which must park rather than hold the exit up).
    with SimThread(SimConfig(api_key=SIM_KEY, latency_ms=200, fail_rate=0.1)) as sim:
        base = sim.base_url
        config = one_sim_config(
            tmp / "frugal.toml",
            prefix=f"shutdown-{tmp.name}",
            data_dir=data,
            sim_base=base,
            broker=broker,
            worker={"max_in_flight": 32, "shutdown_grace_s": GRACE_S},
            retry={"base_delay_s": 2.0, "max_delay_s": 2.0, "park_after_s": 5.0},
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
            # A moment with calls on the wire (not one where every slot waits on a flush or a
            # backoff), so the SIGTERM right after lands mid-call.
            in_flight_calls = wait_for(
                lambda: result_count(data) >= 60 and sim.stats()["in_flight"],
                timeout=60,
                what="some results, and calls in flight",
            )
            started = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            exit_code = worker.wait(timeout=GRACE_S + 10)
            took = time.monotonic() - started
        finally:
            if worker.poll() is None:
                worker.kill()
        results_at_exit = result_count(data)
        calls_at_exit = sim.stats()["requests"]
        usage_at_exit = lake_query(data, "SELECT count(*) FROM usage_all")[0][0]
        drain = run_frugal(
            ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=120
        )
        assert drain.returncode == 0, drain.stderr[-3000:]
        calls = sim.stats()["requests"]
    return {
        "data": data,
        "jobs": jobs,
        "exit_code": exit_code,
        "took": took,
        "in_flight_calls": in_flight_calls,
        "results_at_exit": results_at_exit,
        "calls_at_exit": calls_at_exit,
        "usage_at_exit": usage_at_exit,
        "calls": calls,
        "log": (tmp / "first.log").read_text(),
    }


def test_sigterm_exits_0_within_the_grace_period(stopped: dict[str, Any]) -> None:
    print(f"SIGTERM to exit: {stopped['took']:.2f} s (grace {GRACE_S} s)")
    assert stopped["exit_code"] == 0
    assert stopped["took"] < GRACE_S
    assert "Traceback" not in stopped["log"]


def test_it_stopped_mid_run_with_calls_in_flight(stopped: dict[str, Any]) -> None:
    assert stopped["in_flight_calls"] > 0
    assert 60 <= stopped["results_at_exit"] < JOBS


def test_every_call_paid_before_the_exit_was_recorded(stopped: dict[str, Any]) -> None:
    """In-flight work finished and was flushed: no call of the first run went unrecorded."""
    assert stopped["usage_at_exit"] == stopped["calls_at_exit"]


def test_jobs_waiting_out_a_backoff_were_parked_not_waited_for(stopped: dict[str, Any]) -> None:
    assert "parking" in stopped["log"]


def test_a_restarted_drain_pays_for_nothing_already_answered(stopped: dict[str, Any]) -> None:
    assert_each_job_answered_once(stopped["data"], stopped["jobs"])
    (answered_twice,) = lake_query(
        stopped["data"],
        "SELECT count(*) FROM (SELECT job_id FROM usage_all WHERE outcome = 'ok'"
        " GROUP BY job_id HAVING count(*) > 1)",
    )[0]
    assert answered_twice == 0
    (usage,) = lake_query(stopped["data"], "SELECT count(*) FROM usage_all")[0]
    assert usage == stopped["calls"]  # every paid call, of both runs, is on record


def test_parked_jobs_kept_their_story_across_the_retry_topic(stopped: dict[str, Any]) -> None:
    rows = lake_query(
        stopped["data"],
        "SELECT r.job_id, any_value(r.attempts), any_value(r.cost_usd), count(*),"
        " sum(u.cost_usd), count(DISTINCT u.worker)"
        " FROM results_all r JOIN usage_all u USING (job_id) GROUP BY r.job_id",
    )
    for job_id, attempts, cost, calls, billed, _ in rows:
        assert attempts == calls, job_id
        assert cost == pytest.approx(billed), job_id
    assert any(workers == 2 for *_, workers in rows), "no job parked at exit and resumed"
