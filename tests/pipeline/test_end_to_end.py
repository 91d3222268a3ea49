"""The walking skeleton end to end: publish -> worker --drain -> Parquet -> DuckDB over real parts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    jsonl,
    run_frugal,
    sim_providers,
    write_config,
)

from bench.samples import documents, invoices, support_tickets
from bus.broker import EmbeddedBroker
from providers.pricing import cost_usd, resolve_prices
from providers.sim import SimThread
from schemas.completion import Usage
from schemas.config import ModelConfig, SimConfig, SimModelConfig

SIM = SimConfig(
    api_key=SIM_KEY,
    models={
        "gpt-4.1-nano": SimModelConfig(invalid_rate=0.3, cached_share=0.25),
        "gemini-2.0-flash-lite": SimModelConfig(invalid_rate=0.3),
    },
)


@pytest.fixture(scope="module")
def sim() -> SimThread:
    with SimThread(SIM) as running:
        yield running


def sql_json(config: Path, query: str, bootstrap: str) -> list[dict]:
    done = run_frugal(
        ["sql", "--config", str(config), "--format", "json", query], bootstrap=bootstrap
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def drained(
    broker: EmbeddedBroker, sim: SimThread, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """One published workload, drained once; the tests below read what it left behind."""
    tmp = tmp_path_factory.mktemp("e2e")
    base = sim.base_url
    config = write_config(
        tmp / "frugal.toml",
        prefix="e2e",
        data_dir=tmp / "data",
        providers=sim_providers({"openai": base, "anthropic": base, "gemini": base}),
        models=default_models(),
    )
    jobs = support_tickets(40) + invoices(15)
    docs = documents(4)
    docs_file = tmp / "docs.jsonl"
    docs_file.write_text(jsonl({"kind": "ingest", **d} for d in docs))
    published = run_frugal(
        ["publish", "--config", str(config), "-"], bootstrap=broker.bootstrap, stdin=jsonl(jobs)
    )
    assert published.returncode == 0, published.stderr
    assert "published 55 records" in published.stdout
    published_docs = run_frugal(
        ["publish", "--config", str(config), str(docs_file)], bootstrap=broker.bootstrap
    )
    assert published_docs.returncode == 0, published_docs.stderr
    drain = run_frugal(
        ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=180
    )
    assert drain.returncode == 0, drain.stderr[-3000:]
    return {
        "config": config,
        "jobs": jobs,
        "docs": docs,
        "bootstrap": broker.bootstrap,
        "log": drain.stderr,
    }


def test_every_job_has_the_right_output(drained: dict) -> None:
    rows = sql_json(drained["config"], "SELECT job_id, output FROM results", drained["bootstrap"])
    outputs = {r["job_id"]: json.loads(r["output"]) for r in rows}
    for job in drained["jobs"]:
        assert outputs[job["id"]] == job["metadata"]["expected"], job["id"]


def test_usage_tokens_equal_the_providers_bill(drained: dict, sim: SimThread) -> None:
    rows = sql_json(
        drained["config"],
        "SELECT model, count(*) AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,"
        " sum(cached_input_tokens) AS cached FROM usage GROUP BY model",
        drained["bootstrap"],
    )
    billed = sim.stats()["models"]
    ours = {r["model"]: r for r in rows}
    assert ours, "no usage rows"
    for name, row in ours.items():
        model_id = next(m["model"] for m in default_models() if m["name"] == name)
        assert row["calls"] == billed[model_id]["calls"]
        assert row["input_tokens"] == billed[model_id]["input_tokens"]
        assert row["output_tokens"] == billed[model_id]["output_tokens"]


def test_costs_are_priced_from_the_reported_tokens(drained: dict) -> None:
    rows = sql_json(
        drained["config"],
        "SELECT model, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, cost_usd FROM usage",
        drained["bootstrap"],
    )
    models = {m["name"]: ModelConfig(**m) for m in default_models()}
    for row in rows:
        usage = Usage(
            **{
                k: row[k]
                for k in (
                    "input_tokens",
                    "output_tokens",
                    "cached_input_tokens",
                    "cache_write_tokens",
                    "reasoning_tokens",
                )
            }
        )
        assert row["cost_usd"] == pytest.approx(
            cost_usd(resolve_prices(models[row["model"]]), usage), rel=1e-9
        )
        assert row["cost_usd"] > 0


def test_invalid_output_escalates_to_the_next_model(drained: dict) -> None:
    rows = sql_json(
        drained["config"],
        "SELECT r.job_id, r.model, r.attempts FROM results r WHERE r.job_id IN"
        " (SELECT job_id FROM usage WHERE outcome = 'invalid_output')",
        drained["bootstrap"],
    )
    assert rows, "the cheap models' invalid answers never escalated"
    assert all(r["attempts"] >= 2 for r in rows)


def test_documents_fan_out_into_results_joinable_by_doc_id(drained: dict) -> None:
    rows = sql_json(
        drained["config"],
        "SELECT doc_id, count(*) AS tasks, any_value(json_extract_string(output, '$.label')) FILTER (WHERE kind = 'classify') AS topic"
        " FROM results WHERE doc_id IS NOT NULL GROUP BY doc_id ORDER BY doc_id",
        drained["bootstrap"],
    )
    assert [r["doc_id"] for r in rows] == [d["id"] for d in drained["docs"]]
    for row, doc in zip(rows, drained["docs"], strict=True):
        assert row["tasks"] == 2
        assert row["topic"] == doc["tasks"][0]["metadata"]["expected"]["label"]


def test_no_output_or_file_contains_the_api_key(drained: dict) -> None:
    assert SIM_KEY not in drained["log"]
    data_dir = drained["config"].parent / "data"
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert SIM_KEY.encode() not in path.read_bytes(), path
