"""Routing: which models are adequate for a job, in which order, and what the order learns."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.app import resolve_all_prices
from pipeline.routing import OVER_BUDGET, Candidate, Router, RoutingInput, with_reason
from pipeline.validity import ValidityStats, learned_stats
from schemas.config import Config, ModelConfig, StorageConfig
from schemas.jobs import TaskJob, parse_job
from schemas.rows import UsageRow
from sinks.parquet import ParquetSink

MODELS: list[dict[str, Any]] = [
    # name, provider, tier, $/M in, $/M out, context window, capabilities
    dict(name="nano", provider="a", tier=1, input_per_mtok=0.1, output_per_mtok=0.4),
    dict(name="lite", provider="b", tier=1, input_per_mtok=0.2, output_per_mtok=0.8),
    dict(name="mini", provider="a", tier=2, input_per_mtok=0.5, output_per_mtok=2.0),
    dict(name="haiku", provider="c", tier=2, input_per_mtok=0.8, output_per_mtok=4.0),
    dict(name="big", provider="a", tier=3, input_per_mtok=2.5, output_per_mtok=10.0),
]


def config(**overrides: Any) -> Config:
    models = [
        {"model": m["name"], "context_window": 8000, "capabilities": ["json_schema"], **m}
        for m in MODELS
    ]
    data: dict[str, Any] = {
        "providers": [{"name": p, "base_url": f"http://{p}.invalid/v1"} for p in "abc"],
        "models": models,
        **overrides,
    }
    return Config.model_validate(data)


def job(**fields: Any) -> TaskJob:
    return parse_job({"id": "j", "kind": "classify", "labels": ["x", "y"], **fields})


def need(j: TaskJob, input_tokens: int = 500, allowance: int = 64) -> RoutingInput:
    return RoutingInput(j, input_tokens, allowance)


def router(cfg: Config | None = None, **kwargs: Any) -> Router:
    cfg = cfg or config()
    return Router(cfg, resolve_all_prices(cfg), **kwargs)


def order(r: Router, j: TaskJob, **kw: Any) -> list[str]:
    return [c.model.name for c in r.candidates(need(j, **kw))]


def test_adequate_models_are_tried_cheapest_first() -> None:
    assert order(router(), job()) == ["nano", "lite", "mini", "haiku", "big"]


def test_tier_comes_from_the_route_and_the_job_overrides_it() -> None:
    r = router(config(routes={"classify": {"min_tier": 2}}))
    assert order(r, job()) == ["mini", "haiku", "big"]
    assert order(r, job(min_tier=3)) == ["big"]


def test_allowed_providers_come_from_the_route_and_the_job_overrides_them() -> None:
    r = router(config(routes={"classify": {"providers": ["b", "c"]}}))
    assert order(r, job()) == ["lite", "haiku"]
    assert order(r, job(providers=["a"])) == ["nano", "mini", "big"]


def test_the_context_window_must_hold_the_input_and_the_output_allowance() -> None:
    plan = router().plan(need(job(), input_tokens=7950, allowance=64))
    assert plan.candidates == [] and set(plan.rejected.values()) == {"context window"}
    assert order(router(), job(), input_tokens=7900, allowance=64) != []


def test_an_unhealthy_provider_is_left_out() -> None:
    r = router(provider_available=lambda name: name != "a")
    assert order(r, job()) == ["lite", "haiku"]


def test_max_cost_usd_rules_out_models_whose_expected_cost_is_higher() -> None:
    cap = router().plan(need(job())).candidates[2].estimated_cost_usd  # mini's estimate
    assert order(router(), job(max_cost_usd=cap)) == ["nano", "lite", "mini"]
    routed = router(config(routes={"classify": {"max_cost_usd": cap}}))
    assert order(routed, job()) == ["nano", "lite", "mini"]


def test_a_model_without_budget_left_is_not_adequate_and_the_plan_says_so() -> None:
    r = router(within_budget=lambda model, _job, _usd: model.provider != "a")
    plan = r.plan(need(job()))
    assert [c.model.name for c in plan.candidates] == ["lite", "haiku"]
    assert plan.rejected["nano"] == OVER_BUDGET and plan.budget_blocked


def test_a_cheap_model_that_is_usually_wrong_for_a_kind_stops_being_tried_first() -> None:
    stats = ValidityStats()
    for i in range(40):
        stats.record("nano", "classify", valid=i % 10 == 0, output_tokens=8)  # 10% valid
        stats.record("lite", "classify", valid=True, output_tokens=8)
    r = router(stats=stats)
    ranked = order(r, job())
    assert ranked[0] == "lite" and ranked.index("nano") > ranked.index("mini")
    # ... only for that kind: extraction still starts with it.
    extract = parse_job({"id": "e", "kind": "extract", "schema": {"type": "object"}})
    assert order(r, extract)[0] == "nano"


def test_a_slightly_worse_but_much_cheaper_model_stays_first() -> None:
    stats = ValidityStats()
    for i in range(40):
        stats.record("nano", "classify", valid=i % 10 != 0, output_tokens=8)  # 90% valid
    assert order(router(stats=stats), job())[0] == "nano"


def test_the_expected_bill_counts_escalations() -> None:
    plan = router().plan(need(job()))
    first, second = plan.candidates[:2]
    expected = first.estimated_cost_usd + (1 - first.valid_rate) * second.estimated_cost_usd
    assert plan.expected_cost_usd() > expected  # and the rest of the chain on top
    assert plan.expected_cost_usd() < sum(c.estimated_cost_usd for c in plan.candidates)


def test_preferred_providers_win_ties_and_avoided_providers_go_last() -> None:
    same = [{**m, "input_per_mtok": 1.0, "output_per_mtok": 1.0} for m in MODELS[:2]]
    cfg = Config.model_validate(
        {
            "providers": [{"name": p, "base_url": "http://x.invalid/v1"} for p in "ab"],
            "models": [{"model": m["name"], "capabilities": ["json_schema"], **m} for m in same],
            "routes": {"classify": {"prefer": ["b"]}},
        }
    )
    assert order(router(cfg), job()) == ["lite", "nano"]
    assert order(router(), job(avoid_providers=["a"])) == ["lite", "haiku", "nano", "mini", "big"]


def test_a_model_without_structured_output_starts_with_a_lower_prior() -> None:
    models = [{**m, "capabilities": []} if m["name"] == "nano" else m for m in MODELS]
    cfg = Config.model_validate(
        {
            "providers": [{"name": p, "base_url": "http://x.invalid/v1"} for p in "abc"],
            "models": [{"model": m["name"], "capabilities": ["json_schema"], **m} for m in models],
        }
    )
    nano = next(c for c in router(cfg).candidates(need(job())) if c.model.name == "nano")
    assert nano.valid_rate < router().candidates(need(job()))[0].valid_rate
    assert "prompt" in nano.reason


def test_the_route_reason_says_why() -> None:
    reason = router().candidates(need(job()))[1].reason
    assert reason.startswith("rank 2/5:") and "valid" in reason and "/answer" in reason


def usage_row(model: str, outcome: str, n: int) -> UsageRow:
    return UsageRow(
        job_id=f"{model}-{n}", attempt=1, kind="classify", tenant="t", provider="a", model=model,
        input_tokens=100, output_tokens=9, cached_input_tokens=50, cache_write_tokens=0,
        reasoning_tokens=0, cost_usd=0.0, latency_ms=1.0, outcome=outcome,
        ts=datetime.now(UTC), worker="w",
    )  # fmt: skip


@pytest.fixture
def lake(tmp_path: Path) -> StorageConfig:
    return StorageConfig(data_dir=tmp_path / "data")


async def test_a_restarted_worker_remembers_validity_from_the_usage_table(
    lake: StorageConfig,
) -> None:
    sink = ParquetSink(lake, "w")
    rows = [usage_row("nano", "invalid_output" if i % 5 else "ok", i) for i in range(30)]
    rows += [usage_row("nano", "rate_limited", 99)]  # not an answer: says nothing of validity
    sink.add(rows)
    await sink.flush()
    stats = learned_stats(lake)
    assert stats.seen("nano", "classify") == 30
    assert stats.valid_rate("nano", "classify") == pytest.approx((6 + 0.9 * 4) / (30 + 4))
    assert stats.expected_output("nano", "classify", 64) == 9
    assert stats.cached_share("nano") == pytest.approx(0.5)
    assert order(router(stats=stats), job())[0] != "nano"


def test_an_empty_lake_seeds_nothing(lake: StorageConfig) -> None:
    assert learned_stats(lake).tallies == {}


def test_ranked_candidates_keep_every_field_but_their_reason() -> None:
    model = ModelConfig(name="m", provider="p", model="m", tier=1)
    c = Candidate(model, 0.1, 0.2, 0.9, "", 0.8, purpose="audit", audit_of="x")
    ranked = with_reason(c, "rank 1/1")
    assert ranked == replace(c, reason="rank 1/1")
