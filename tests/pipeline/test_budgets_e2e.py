"""Cost caps end to end: a total cap on one provider holds with one worker and with two at once,
the overflow completes on the next adequate model, and an unaffordable job is dead-lettered."""

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
    start_frugal,
    write_config,
)

from bench.samples import support_tickets
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

CAP_USD = 0.0008  # about half of what the jobs cost on the cheap provider
JOBS = 100
UNAFFORDABLE = 3


def providers(base: str) -> list[dict[str, Any]]:
    accounts = {f"openai-{name}": f"{base}/{name}" for name in ("cheap", "next", "capped")}
    return sim_providers(accounts, rpm=300)


MODELS = [
    {"name": "nano", "provider": "openai-cheap", "model": "gpt-4.1-nano", "tier": 1},
    {"name": "mini", "provider": "openai-next", "model": "gpt-4o-mini", "tier": 1},
    {"name": "big", "provider": "openai-capped", "model": "gpt-4o", "tier": 1},
]
BUDGETS = [
    {"scope": "provider", "match": "openai-cheap", "window": "total", "limit_usd": CAP_USD},
    {"scope": "provider", "match": "openai-capped", "window": "total", "limit_usd": 1e-6},
]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(SimConfig(api_key=SIM_KEY)) as running:
        yield running


def setup(tmp: Path, sim: SimThread, prefix: str, broker: Any, **kafka: Any) -> tuple[Path, list]:
    config = write_config(
        tmp / "frugal.toml",
        prefix=prefix,
        data_dir=tmp / "data",
        providers=providers(sim.base_url),
        models=[{**m, "capabilities": ["json_schema"]} for m in MODELS],
        budgets=BUDGETS,
        kafka=kafka,
    )
    jobs = support_tickets(JOBS, prefix=prefix)
    for job in jobs[:UNAFFORDABLE]:  # only the provider whose cap is below one call
        job["providers"] = ["openai-capped"]
    published = run_frugal(
        ["publish", "--config", str(config), "-"], bootstrap=broker.bootstrap, stdin=jsonl(jobs)
    )
    assert published.returncode == 0, published.stderr
    return config, jobs


def spend_on(data_dir: Path, provider: str) -> float:
    rows = lake_query(
        data_dir, f"SELECT sum(cost_usd) FROM usage_all WHERE provider = '{provider}'"
    )
    return float(rows[0][0] or 0.0)


@pytest.fixture(scope="module")
def one_worker(broker: EmbeddedBroker, sim: SimThread, tmp_path_factory) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("cap1")
    config, jobs = setup(tmp, sim, "cap-one", broker)
    drain = run_frugal(
        ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=120
    )
    assert drain.returncode == 0, drain.stderr[-3000:]
    return {"config": config, "jobs": jobs, "data": tmp / "data", "bootstrap": broker.bootstrap}


def test_a_total_cap_on_one_provider_is_never_exceeded_and_mostly_used(
    one_worker: dict[str, Any],
) -> None:
    spent = spend_on(one_worker["data"], "openai-cheap")
    print(f"one worker: ${spent:.6f} of ${CAP_USD} ({spent / CAP_USD:.1%})")
    assert spent <= CAP_USD
    assert spent >= 0.6 * CAP_USD


def test_the_overflow_completes_on_the_next_adequate_model(one_worker: dict[str, Any]) -> None:
    rows = lake_query(one_worker["data"], "SELECT provider, count(*) FROM results_all GROUP BY 1")
    answered = dict(rows)
    assert answered["openai-cheap"] > 0 and answered["openai-next"] > 0
    assert sum(answered.values()) == JOBS - UNAFFORDABLE
    reasons = lake_query(
        one_worker["data"],
        "SELECT count(*) FROM usage_all WHERE provider = 'openai-next'"
        " AND route_reason LIKE '%over budget%'",
    )
    assert reasons[0][0] > 0  # the usage table says why the pricier model was used


def test_a_job_no_model_can_afford_is_dead_lettered_as_budget_exhausted(
    one_worker: dict[str, Any],
) -> None:
    rows = lake_query(one_worker["data"], "SELECT job_id, error_type FROM dead_letters_all")
    assert sorted(rows) == sorted((j["id"], "budget_exhausted") for j in one_worker["jobs"][:3])
    listed = run_frugal(
        ["dlq", "list", "--config", str(one_worker["config"])], bootstrap=one_worker["bootstrap"]
    )
    assert listed.returncode == 0 and "budget_exhausted" in listed.stdout


def test_two_workers_at_once_keep_the_bill_within_5_percent_of_the_cap(
    each_broker: Any, sim: SimThread, tmp_path: Path, prefix: str
) -> None:
    broker = each_broker  # real Kafka wants a session timeout of at least 6 s
    config, _ = setup(tmp_path, sim, prefix, broker, session_timeout_s=6)
    workers = [
        start_frugal(
            ["worker", "--config", str(config), "--drain"],
            bootstrap=broker.bootstrap,
            log=tmp_path / f"worker{i}.log",
        )
        for i in range(2)
    ]
    try:
        for w in workers:
            assert w.wait(timeout=120) == 0, (tmp_path / "worker0.log").read_text()[-3000:]
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
    data = tmp_path / "data"
    spent = spend_on(data, "openai-cheap")
    by_worker = lake_query(
        data, "SELECT count(DISTINCT worker) FROM usage_all WHERE provider = 'openai-cheap'"
    )
    print(f"two workers: ${spent:.6f} of ${CAP_USD} ({spent / CAP_USD:.1%})")
    assert by_worker[0][0] == 2, "both workers must have spent on the capped provider"
    assert spent <= CAP_USD * 1.05
    assert spent >= 0.6 * CAP_USD
    answered = lake_query(data, "SELECT count(DISTINCT job_id) FROM results_all")
    assert answered[0][0] == JOBS - UNAFFORDABLE
