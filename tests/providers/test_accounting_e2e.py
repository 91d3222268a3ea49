"""The issue's acceptance test: 500 mixed classify/extract jobs through independent OpenAI,
Anthropic and Gemini providers (cached and reasoning tokens, 429s, 5xx, 529s) end with the
right outputs, and `usage` equals each provider's own bill: calls and every token count exactly,
dollars to one part in a million.

The bills are the simulators' `/stats`, counted server-side from what each one answered; the
dollars are those bills priced by genai-prices' own `calc_price`, not by Frugal's pricing code.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price
from support.full_run import CATALOG_PROVIDER, SIMS, FullRun, model_id

TOKENS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
)
FAILED = ("rate_limited", "server_error", "overloaded")
PER_MILLION = 1e-6


def usage_by_model(run: FullRun) -> dict[tuple[str, str], dict[str, Any]]:
    """(provider, the provider's model id) -> calls and token sums from Frugal's `usage`."""
    sums = ", ".join(f"sum({t}) AS {t}" for t in TOKENS)
    rows = run.sql(
        f"SELECT provider, model, count(*) AS calls, {sums}, sum(cost_usd) AS cost_usd"
        " FROM usage GROUP BY provider, model"
    )
    return {(r["provider"], model_id(r["model"])): r for r in rows}


def billed_by_model(run: FullRun) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (provider, model): bill
        for provider, stats in run.bills.items()
        for model, bill in stats["models"].items()
    }


def catalog_dollars(provider: str, model: str, bill: dict[str, Any]) -> float:
    usage = CatalogUsage(
        input_tokens=bill["input_tokens"],
        cache_read_tokens=bill["cached_input_tokens"],
        cache_write_tokens=bill["cache_write_tokens"],
        output_tokens=bill["output_tokens"],
    )
    return float(calc_price(usage, model, provider_id=CATALOG_PROVIDER[provider]).total_price)


def test_every_job_ends_with_the_expected_output(drained_run: FullRun) -> None:
    rows = drained_run.sql("SELECT job_id, kind, provider, output FROM results")
    outputs = {r["job_id"]: r for r in rows}
    assert len(drained_run.jobs) == 500
    assert {j["kind"] for j in drained_run.jobs} == {"classify", "extract"}
    assert set(outputs) == {j["id"] for j in drained_run.jobs}
    for job in drained_run.jobs:
        row = outputs[job["id"]]
        assert json.loads(row["output"]) == job["metadata"]["expected"], job["id"]
        assert [row["provider"]] == job["providers"]
    assert drained_run.sql("SELECT count(*) AS n FROM dead_letters")[0]["n"] == 0


def test_the_providers_really_billed_cache_reasoning_and_failures(drained_run: FullRun) -> None:
    """Otherwise the equalities below would prove little."""
    for provider, stats in drained_run.bills.items():
        assert stats["rate_limited"] > 0, provider
        assert stats["server_errors"] > 0, provider
        assert stats["invalid_answers"] > 0, provider
        assert stats["usage"]["cached_input_tokens"] > 0, provider
        assert stats["usage"]["reasoning_tokens"] > 0, provider
        assert stats["auth_failures"] == stats["bad_requests"] == stats["not_found"] == 0
    assert drained_run.bills["anthropic"]["overloaded"] > 0  # 529s
    assert set(drained_run.bills) == set(SIMS)


def test_usage_calls_and_tokens_equal_each_providers_bill(drained_run: FullRun) -> None:
    ours = usage_by_model(drained_run)
    billed = billed_by_model(drained_run)
    assert set(ours) == set(billed)
    for key, bill in billed.items():
        row = ours[key]
        assert row["calls"] == bill["calls"], key  # 429s and 5xx included, on both sides
        for token in TOKENS:
            assert row[token] == bill[token], (key, token)


def test_usage_outcomes_match_what_each_provider_answered(drained_run: FullRun) -> None:
    rows = drained_run.sql(
        "SELECT provider, outcome, count(*) AS calls, sum(input_tokens + output_tokens) AS tokens"
        " FROM usage GROUP BY provider, outcome"
    )
    outcomes: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for r in rows:
        outcomes[r["provider"]][r["outcome"]] = r
    for provider, stats in drained_run.bills.items():
        seen = {o: r["calls"] for o, r in outcomes[provider].items()}
        assert seen.get("rate_limited", 0) == stats["rate_limited"], provider
        assert seen.get("server_error", 0) == stats["server_errors"], provider
        assert seen.get("overloaded", 0) == stats["overloaded"], provider
        assert seen.get("ok", 0) + seen.get("invalid_output", 0) == stats["ok"], provider
        assert set(seen) <= {"ok", "invalid_output", *FAILED}, seen
        for outcome in FAILED:  # unanswered: billed nothing, counted nothing
            assert outcomes[provider].get(outcome, {"tokens": 0})["tokens"] == 0


def test_dollars_equal_the_bill_priced_by_the_catalog(drained_run: FullRun) -> None:
    ours = usage_by_model(drained_run)
    total_ours = total_billed = 0.0
    for (provider, model), bill in billed_by_model(drained_run).items():
        expected = catalog_dollars(provider, model, bill)
        assert expected > 0
        assert ours[(provider, model)]["cost_usd"] == pytest.approx(expected, rel=PER_MILLION)
        total_ours += ours[(provider, model)]["cost_usd"]
        total_billed += expected
    assert total_ours == pytest.approx(total_billed, rel=PER_MILLION)


def test_results_carry_the_cost_and_calls_of_all_their_attempts(drained_run: FullRun) -> None:
    rows = drained_run.sql(
        "SELECT r.job_id, r.attempts, r.cost_usd, u.calls, u.cost_usd AS usage_cost"
        " FROM results r JOIN (SELECT job_id, count(*) AS calls, sum(cost_usd) AS cost_usd"
        " FROM usage GROUP BY job_id) u USING (job_id)"
    )
    assert len(rows) == 500
    for r in rows:
        assert r["attempts"] == r["calls"], r
        assert r["cost_usd"] == pytest.approx(r["usage_cost"], rel=1e-9), r
    assert any(r["attempts"] > 1 for r in rows)  # escalations and retries happened
