"""Audits on the normal call path (runner + simulator on loopback, no Kafka): the audit model's
answer wins a disagreement, audits are billed as `purpose = 'audit'`, held to the caps, and a
model that drifts is left out again."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from bench.audit_workload import KEY, KEY_ENV, jobs, models, sim_config
from bench.samples import invoices
from cli.config import load_config
from pipeline.app import resolve_all_prices
from pipeline.budgets import Budgets
from pipeline.limits import Limits
from pipeline.quality import QualityStats
from pipeline.routing import Router
from pipeline.runner import JobRunner
from providers.registry import build_adapter
from providers.sim import SimThread
from schemas.config import Config
from schemas.jobs import parse_job
from schemas.rows import ResultRow, UsageRow


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(sim_config()) as running:
        yield running


def config(sim: SimThread, route: dict[str, Any], kind: str = "classify", **extra: Any) -> Config:
    data = {
        "providers": [
            {"name": "sim", "base_url": f"{sim.base_url}/v1", "api_key_env": KEY_ENV},
        ],
        "models": models(),
        "routes": {kind: route},
        **extra,
    }
    path = Path(tempfile.mkdtemp()) / "frugal.toml"
    path.write_text(tomli_w.dumps(data))
    return load_config(path, env={KEY_ENV: KEY})


async def run_all(
    cfg: Config, batch: list[dict[str, Any]], quality: QualityStats | None = None
) -> list[tuple[ResultRow, list[UsageRow]]]:
    prices = resolve_all_prices(cfg)
    adapters = {p.name: build_adapter(p) for p in cfg.providers}
    router = Router(cfg, prices, quality=quality)
    runner = JobRunner(
        cfg, adapters, prices, router, Limits(cfg.providers), Budgets(cfg.budgets), "t"
    )
    gate = asyncio.Semaphore(8)

    async def one(job: dict[str, Any]) -> tuple[ResultRow, list[UsageRow]]:
        async with gate:
            result, story = await runner.run(parse_job(job))
            return result, story.usage_rows

    try:
        return await asyncio.gather(*(one(j) for j in batch))
    finally:
        for adapter in adapters.values():
            await adapter.aclose()


ALWAYS = {"audit_rate": 1.0, "audit_model": "frontier"}


def test_when_the_audit_disagrees_the_result_is_the_audit_models_answer(sim: SimThread) -> None:
    batch = jobs(60, "overrule")
    done = asyncio.run(run_all(config(sim, ALWAYS), batch))
    expected = {j["id"]: j["metadata"]["expected"]["label"] for j in batch}
    overruled = [(r, u) for r, u in done if r.model == "frontier"]
    assert overruled, "the cheap model is 30% wrong: some answers must be overruled"
    for result, usage in done:
        assert json.loads(result.output)["label"] == expected[result.job_id]
        answer, audit = usage
        assert (answer.purpose, answer.model) == ("answer", "cheap")
        assert (audit.purpose, audit.model, audit.audit_of) == ("audit", "frontier", "cheap")
        assert audit.agreed is (result.model == "cheap")
        assert result.cost_usd == pytest.approx(answer.cost_usd + audit.cost_usd)
    assert all("overruled cheap" in r.route_reason for r, _ in overruled)


def test_a_misread_extraction_is_caught_field_by_field(sim: SimThread) -> None:
    batch = invoices(40, prefix="audit-inv")
    done = asyncio.run(run_all(config(sim, ALWAYS, kind="extract"), batch))
    expected = {j["id"]: j["metadata"]["expected"] for j in batch}
    assert {r.model for r, _ in done} == {"cheap", "frontier"}  # some agreed, some overruled
    for result, usage in done:
        assert json.loads(result.output) == expected[result.job_id]
        assert usage[-1].agreed is (result.model == "cheap")


def test_audits_are_held_to_the_caps_like_any_call(sim: SimThread) -> None:
    cap = 0.003  # room for a handful of frontier calls (~$0.0005 each)
    budgets = [{"scope": "model", "match": "frontier", "window": "total", "limit_usd": cap}]
    route = {**ALWAYS, "max_output_tokens": 16}  # a small worst case to reserve
    done = asyncio.run(run_all(config(sim, route, budgets=budgets), jobs(60, "capped")))
    audits = [u for _, rows in done for u in rows if u.purpose == "audit"]
    assert 0 < len(audits) < 60
    assert sum(u.cost_usd for u in audits) <= cap
    assert len(done) == 60  # an answer whose audit has no budget stands


def test_a_model_that_drifts_is_left_out_again(sim: SimThread) -> None:
    cfg = config(sim, {"audit_rate": 0.05, "audit_model": "frontier", "min_accuracy": 0.95})
    quality = QualityStats()
    quality.seed([("cheap", "classify", True)] * 100)  # it used to be right
    prices = resolve_all_prices(cfg)
    router = Router(cfg, prices, quality=quality)
    need = JobRunner(
        cfg, {}, prices, router, Limits(cfg.providers), Budgets([]), "t"
    ).routing_input(parse_job(jobs(1, "drift")[0]))
    assert router.candidates(need)[0].model.name == "cheap"
    drifted = 0
    while "cheap" not in router.plan(need).rejected and drifted < 100:
        quality.record("cheap", "classify", False)
        drifted += 1
    assert drifted <= 20  # the window forgets the old record fast enough
    assert "inaccurate for classify" in router.plan(need).rejected["cheap"]
