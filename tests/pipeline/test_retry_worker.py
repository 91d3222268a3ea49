"""In the worker: a record waiting out a backoff never holds up the records behind it."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    lake_query,
    run_frugal,
    sim_providers,
    write_config,
)
from support.worker_runs import publish_stuck_and_followers

from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

FOLLOWERS = 30


@pytest.fixture(scope="module")
def drained(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One partition: a job bound to a failing provider first, then jobs for a healthy one."""
    tmp = tmp_path_factory.mktemp("backoff")
    down, up = (
        SimThread(SimConfig(api_key=SIM_KEY, fail_rate=1.0)),
        SimThread(SimConfig(api_key=SIM_KEY)),
    )
    with down, up:
        config = write_config(
            tmp / "frugal.toml",
            prefix="backoff",
            data_dir=tmp / "data",
            providers=sim_providers(
                {"openai": down.base_url, "anthropic": up.base_url, "gemini": up.base_url}
            ),
            models=default_models(),
            # A session long enough that a loaded machine does not rebalance the group mid-run:
            # the stuck job parks at once on a revoke (tests/consumers/test_revoke_backoff.py),
            # but the embedded broker takes seconds to assign the partition again, and no
            # record behind it is answered meanwhile: longer than its 1-2 s backoffs.
            kafka={"partitions": 1, "session_timeout_s": 10},
            # Three retries of 1-2 s each: seconds of backoff, all short enough to wait in-task,
            # and long enough that 30 answers behind it finish first on a loaded machine too.
            retry={"max_retries": 3, "base_delay_s": 2.0, "max_delay_s": 2.0, "park_after_s": 10},
        )
        followers = publish_stuck_and_followers(config, broker.bootstrap, FOLLOWERS)
        drain = run_frugal(
            ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=120
        )
        assert drain.returncode == 0, drain.stderr[-3000:]
    return {"data": tmp / "data", "followers": followers}


def test_the_stuck_job_retried_with_backoff_then_died(drained: dict[str, Any]) -> None:
    calls = lake_query(
        drained["data"], "SELECT ts, outcome FROM usage_all WHERE job_id = 'stuck' ORDER BY ts"
    )
    assert [outcome for _, outcome in calls] == ["server_error"] * 4  # a try and 3 retries
    gaps = [(b[0] - a[0]).total_seconds() for a, b in pairwise(calls)]
    assert all(gap >= 0.5 for gap in gaps), gaps
    dead = lake_query(drained["data"], "SELECT job_id FROM dead_letters_all")
    assert dead == [("stuck",)]


def test_the_records_behind_it_finished_while_it_waited(drained: dict[str, Any]) -> None:
    # A usage row's ts is when its call returned: the first call began latency_ms before.
    (first_call, died) = lake_query(
        drained["data"],
        "SELECT (SELECT min(ts - to_microseconds(CAST(latency_ms * 1000 AS BIGINT)))"
        " FROM usage_all WHERE job_id = 'stuck'),"
        " (SELECT failed_at FROM dead_letters_all WHERE job_id = 'stuck')",
    )[0]
    done = lake_query(
        drained["data"], "SELECT min(completed_at), max(completed_at), count(*) FROM results_all"
    )[0]
    assert done[2] == FOLLOWERS
    assert first_call < done[0]  # it came first on the partition...
    assert done[1] < died  # ...yet every record behind it was answered before it gave up
