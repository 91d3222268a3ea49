"""A rebalance never waits for a record sleeping in a retry backoff.

Two workers, one partition per topic, one record in flight per worker: on the worker that owns
the job partition, a job bound to a failing provider sleeps in a long in-task backoff and holds
the only slot, so the jobs behind it wait. The other worker then leaves, and the owner is
revoked: its handover must end the sleep at once (the job parks on the retry topic for the
rest of its wait, its paid call kept), so the records behind it are answered long before
the backoff ends. Runs on the embedded broker and on Kafka 3.1.
"""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    kafka_settings,
    lake_query,
    sim_providers,
    start_frugal,
    wait_for,
    write_config,
)
from support.kafka_kit import KafkaKitBroker
from support.worker_runs import publish_stuck_and_followers, result_count

from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

FOLLOWERS = 5  # few: one at a time, each durable before the next
# The stuck job's one backoff: 10-20 s (jitter is half to full), longer than the group takes to
# assign the partition again: ~5 s on the embedded broker (~3 s before it sees a member leave,
# ~2 s more to assign), measured up to 10.6 s with the machine at a load average of 33.
BACKOFF_S = 20.0
GENERATION = re.compile(r"generation (\d+): (.*)")
HANDOVER = re.compile(r"handed over \d+ partitions in ([\d.]+) s")
PARKED = re.compile(r"^(\S+ \S+) INFO frugal.worker: parking stuck for ([\d.]+) s", re.MULTILINE)


def _latest_generation(log: Path) -> tuple[int, str] | None:
    found = GENERATION.findall(log.read_text()) if log.exists() else []
    return (int(found[-1][0]), found[-1][1]) if found else None


def _both_in_one_generation(logs: list[Path]) -> list[str] | None:
    """What each worker holds, once both logged the same latest generation."""
    latest = [_latest_generation(log) for log in logs]
    if any(g is None for g in latest) or len({g[0] for g in latest if g}) != 1:
        return None
    return [g[1] for g in latest if g]


def _dead_letters(data: Path) -> list[tuple[Any, ...]]:
    try:
        return lake_query(data, "SELECT job_id FROM dead_letters_all")
    except Exception:  # no dead letter written yet
        return []


@pytest.fixture(scope="module")
def handed_over(
    each_broker: EmbeddedBroker | KafkaKitBroker, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    broker = each_broker
    tmp = tmp_path_factory.mktemp("revoke-backoff")
    data = tmp / "data"
    prefix = f"revoke-{tmp.name}"
    down = SimThread(SimConfig(api_key=SIM_KEY, fail_rate=1.0))
    up = SimThread(SimConfig(api_key=SIM_KEY))
    with down, up:
        config = write_config(
            tmp / "frugal.toml",
            prefix=prefix,
            data_dir=data,
            providers=sim_providers(
                {"openai": down.base_url, "anthropic": up.base_url, "gemini": up.base_url}
            ),
            models=default_models(),
            kafka={**kafka_settings(broker), "partitions": 1},
            # One record in flight: the stuck job's backoff holds everything behind it.
            worker={"max_in_flight": 1},
            retry={
                "max_retries": 1,
                "base_delay_s": BACKOFF_S,
                "max_delay_s": BACKOFF_S,
                "park_after_s": 60,  # waited out in the task, not on the retry topic
            },
        )
        args = ["worker", "--config", str(config)]
        logs = [tmp / "worker0.log", tmp / "worker1.log"]
        workers = [start_frugal(args, bootstrap=broker.bootstrap, log=log) for log in logs]
        try:
            held = wait_for(
                lambda: _both_in_one_generation(logs), timeout=60, what="both workers to join"
            )
            owner = next(i for i, h in enumerate(held) if f"{prefix}.classify[0]" in h)
            publish_stuck_and_followers(config, broker.bootstrap, FOLLOWERS)
            down.wait_for(lambda s: s["requests"] >= 1, timeout=30)  # it sleeps from now on
            failed_at = time.time()
            other = workers[1 - owner]
            other.send_signal(signal.SIGTERM)  # it leaves: the owner is revoked mid-backoff
            left = other.wait(timeout=30)
            wait_for(lambda: result_count(data) >= FOLLOWERS, timeout=60, what="the followers")
            followers_done = time.time()
            try:  # it comes back from the retry topic when due (see the last test)
                wait_for(lambda: _dead_letters(data), timeout=BACKOFF_S + 20, what="its death")
                came_back = True
            except AssertionError:
                came_back = False
        except BaseException:
            for log in logs:  # shown with the failure, without the periodic status lines
                lines = log.read_text().splitlines() if log.exists() else []
                shown = [line for line in lines if " status " not in line]
                print(f"--- {log.name}", *shown[-80:], sep="\n")
            raise
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            exits = [worker.wait(timeout=30) for worker in workers]
        calls = down.stats()["requests"]
    return {
        "data": data,
        "failed_at": failed_at,
        "followers_done": followers_done,
        "left": left,
        "came_back": came_back,
        "exits": exits,
        "logs": "\n".join(log.read_text() for log in logs),
        "calls": calls,
    }


def test_the_handover_did_not_wait_for_the_backoff(handed_over: dict[str, Any]) -> None:
    log = handed_over["logs"]
    handovers = [float(seconds) for seconds in HANDOVER.findall(log)]
    print(f"the handovers took {handovers} s; the stuck job's backoff was 10-20 s")
    assert handovers, log[-3000:]
    assert max(handovers) < BACKOFF_S / 4  # measured 0.05-0.1 s
    parkings = [float(rest) for _, rest in PARKED.findall(log)]
    assert parkings and max(parkings) < BACKOFF_S  # only the rest of its backoff


def _due(log: str) -> datetime:
    """When the stuck job's backoff ends: when it was parked, plus the rest it was parked for."""
    at, rest = min(PARKED.findall(log))  # its first parking (the logs of both workers)
    parked = datetime.strptime(at, "%Y-%m-%d %H:%M:%S,%f").astimezone()  # the log's local time
    return parked + timedelta(seconds=float(rest))


def test_the_records_behind_it_were_answered_before_its_backoff_ended(
    handed_over: dict[str, Any],
) -> None:
    data = handed_over["data"]
    (last_answer,) = lake_query(data, "SELECT max(completed_at) FROM results_all")[0]
    took = handed_over["followers_done"] - handed_over["failed_at"]
    print(f"followers answered within {took:.1f} s of the first failure")
    assert last_answer < _due(handed_over["logs"])


def test_every_follower_was_answered_once_and_the_stuck_call_paid_once(
    handed_over: dict[str, Any],
) -> None:
    data = handed_over["data"]
    assert lake_query(data, "SELECT count(*), count(DISTINCT job_id) FROM results_all") == [
        (FOLLOWERS, FOLLOWERS)
    ]
    tries = lake_query(data, "SELECT outcome FROM usage_all WHERE job_id = 'stuck' ORDER BY ts")
    assert tries[0] == ("server_error",)  # its first call, kept when it parked
    assert handed_over["calls"] == len(tries)  # each paid call on record, none paid twice
    assert handed_over["left"] == 0
    assert handed_over["exits"] == [0, 0]


def test_the_stuck_job_came_back_when_due_and_died_once(handed_over: dict[str, Any]) -> None:
    assert handed_over["came_back"]
    data = handed_over["data"]
    assert lake_query(data, "SELECT job_id FROM dead_letters_all") == [("stuck",)]
    tries = lake_query(data, "SELECT ts, outcome FROM usage_all WHERE job_id = 'stuck' ORDER BY ts")
    assert [outcome for _, outcome in tries] == ["server_error", "server_error"]  # one retry
    assert tries[1][0] >= _due(handed_over["logs"]) - timedelta(seconds=1)  # not sooner
    assert handed_over["calls"] == 2
