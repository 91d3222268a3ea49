"""Start-up: the group join begins at once and overlaps the pipeline's start (issue 12).

A worker's first answer should come within ~2 s of its start. faust's table manager used to
sleep a second before the join could begin, and the pipeline started before faust did; on
Tansu a new group's first join is then held for half the session timeout on top.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    jsonl,
    lake_query,
    run_frugal,
    sim_providers,
    start_frugal,
    write_config,
)
from support.kafka_kit import KafkaKitBroker

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

# faust's own table manager slept 1.0 s between starting and asking to join.
JOIN_REQUEST_BOUND_S = 0.8

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


@pytest.fixture(scope="module")
def sim() -> SimThread:
    with SimThread(SimConfig(api_key=SIM_KEY)) as running:
        yield running


def _logged_at(log: str, needle: str) -> float:
    """Epoch seconds of the first log line containing `needle`."""
    for line in log.splitlines():
        if needle in line and (stamp := _STAMP.match(line)):
            return datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"no log line with {needle!r}")


def test_first_answer_soon_after_start(
    each_broker: EmbeddedBroker | KafkaKitBroker,
    sim: SimThread,
    tmp_path: Path,
    prefix: str,
    data_dir: Path,
) -> None:
    # Tansu holds a new group's first join for half the session timeout (at least ~1 s);
    # Kafka wants at least 6 s but (group.initial.rebalance.delay.ms=0 here) does not hold it.
    session = 2 if isinstance(each_broker, EmbeddedBroker) else 6
    config = write_config(
        tmp_path / "frugal.toml",
        prefix=prefix,
        data_dir=data_dir,
        providers=sim_providers({"openai": sim.base_url}),
        models=default_models()[:1],
        kafka={"session_timeout_s": session},
    )
    jobs = support_tickets(5, prefix=prefix)
    published = run_frugal(
        ["publish", "--config", str(config), "-"],
        bootstrap=each_broker.bootstrap,
        stdin=jsonl(jobs),
    )
    assert published.returncode == 0, published.stderr

    log = tmp_path / "worker.log"
    started = time.time()
    worker = start_frugal(
        ["worker", "--config", str(config), "--drain", "-v"],
        bootstrap=each_broker.bootstrap,
        log=log,
    )
    assert worker.wait(timeout=120) == 0, log.read_text()[-3000:]

    [(first,)] = lake_query(data_dir, "SELECT epoch(min(ts)) FROM usage_all WHERE outcome = 'ok'")
    text = log.read_text()
    join_asked = _logged_at(text, "joining group") - _logged_at(text, "[^App]: Starting")
    assert join_asked < JOIN_REQUEST_BOUND_S, f"join asked {join_asked:.2f} s after faust started"
    # Time to the first answer is a benchmark figure (`make bench`), not a timed test: under a
    # loaded machine it varies 2-4x. This test holds the join request, which is structural.
    assert first > started, "the first answer came after the worker started"
