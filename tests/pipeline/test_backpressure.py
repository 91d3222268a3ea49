"""Backpressure end to end: a provider configured at its real rate limit runs close to it without
429s; one configured 5x too high finds the real limit and holds it, and every job completes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    jsonl,
    lake_query,
    run_frugal,
    sim_providers,
    write_config,
)

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

REAL_RPM = 600  # the simulated provider's own limit, per account: 10 requests a second
JOBS = 240  # per provider: ~24 s at the real limit
STEADY_FROM_S = 3.0  # the ramp-up (slow start, a group join) is not the steady part
MODELS = {"openai-exact": "gpt-4.1-nano", "gemini-over": "gemini-2.0-flash-lite"}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(SimConfig(api_key=SIM_KEY, rpm=REAL_RPM, latency_ms=40)) as running:
        yield running


@pytest.fixture(scope="module")
def ran(broker: EmbeddedBroker, sim: SimThread, tmp_path_factory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """One worker, two providers on separate accounts: one at the real limit, one 5x over it.

    The 5x provider speaks Gemini's protocol, which sends no rate-limit headers: only the
    429s and their Retry-After tell the worker to slow down.
    """
    tmp = tmp_path_factory.mktemp("backpressure")
    providers = sim_providers({"openai-exact": f"{sim.base_url}/exact"}, rpm=REAL_RPM)
    providers += sim_providers({"gemini-over": f"{sim.base_url}/over"}, rpm=REAL_RPM * 5)
    config = write_config(
        tmp / "frugal.toml",
        prefix="backpressure",
        data_dir=tmp / "data",
        providers=providers,
        models=[
            {"name": model, "provider": name, "model": model, "capabilities": ["json_schema"]}
            for name, model in MODELS.items()
        ],
    )
    jobs = []
    for name in MODELS:
        for job in support_tickets(JOBS, prefix=name):
            jobs.append({**job, "providers": [name]})
    jobs = [j for pair in zip(jobs[:JOBS], jobs[JOBS:], strict=True) for j in pair]
    published = run_frugal(
        ["publish", "--config", str(config), "-"], bootstrap=broker.bootstrap, stdin=jsonl(jobs)
    )
    assert published.returncode == 0, published.stderr
    drain = run_frugal(
        ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=120
    )
    assert drain.returncode == 0, drain.stderr[-3000:]
    return {"data": tmp / "data", "sim": sim.stats(), "log": drain.stderr}


def steady_throughput(data: Path, provider: str) -> float:
    """Answers per second from STEADY_FROM_S after the first call until 90% of jobs were done."""
    times = [
        row[0]
        for row in lake_query(
            data,
            "SELECT epoch(ts) FROM usage_all WHERE outcome = 'ok'"
            f" AND provider = '{provider}' ORDER BY ts",
        )
    ]
    start = times[0] + STEADY_FROM_S
    end = times[int(len(times) * 0.9)]
    answered = sum(1 for t in times if start <= t <= end)
    return answered / (end - start)


def share_429(sim_stats: dict[str, Any], model: str) -> float:
    bill = sim_stats["models"][model]
    return bill["rate_limited"] / bill["calls"]


def test_every_job_completes_and_nothing_is_dead_lettered(ran: dict[str, Any]) -> None:
    answered = lake_query(ran["data"], "SELECT provider, count(*) FROM results_all GROUP BY 1")
    assert dict(answered) == {name: JOBS for name in MODELS}
    assert lake_query(ran["data"], "SELECT count(*) FROM dead_letters_all") == [(0,)]


def test_at_the_real_limit_throughput_is_at_least_85_percent_with_under_2_percent_429s(
    ran: dict[str, Any],
) -> None:
    rate = steady_throughput(ran["data"], "openai-exact") / (REAL_RPM / 60)
    rejected = share_429(ran["sim"], MODELS["openai-exact"])
    print(f"rpm = real limit: {rate:.1%} of the limit, {rejected:.2%} 429s")
    assert rate >= 0.85
    assert rejected < 0.02


def test_configured_5x_too_high_the_real_limit_is_found_and_held(ran: dict[str, Any]) -> None:
    rate = steady_throughput(ran["data"], "gemini-over") / (REAL_RPM / 60)
    rejected = share_429(ran["sim"], MODELS["gemini-over"])
    print(f"rpm = 5x the real limit: {rate:.1%} of the limit, {rejected:.2%} 429s")
    assert rate >= 0.70
    assert rejected < 0.25


def test_the_worker_logs_a_status_line_per_provider(ran: dict[str, Any]) -> None:
    lines = [line for line in ran["log"].splitlines() if "status gemini-over:" in line]
    assert lines, ran["log"][-2000:]
    last = lines[-1]
    for field in ("in_flight=", "rate=", "429s=", "limit="):
        assert field in last
