"""`frugal worker --metrics-port`: Prometheus counters that add up to the `usage` table."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from support.frugal_testkit import (
    REPO,
    SIM_KEY,
    default_models,
    frugal_env,
    lake_query,
    run_frugal,
    sim_providers,
    write_config,
)

from bus.broker import EmbeddedBroker
from pipeline.budgets import Budgets, CallScope
from pipeline.limits import Limits
from pipeline.metrics import PipelineMetrics, metrics_server
from providers.sim import SimThread
from schemas.config import (
    BudgetConfig,
    ProviderConfig,
    SimConfig,
    SimModelConfig,
    WorkerConfig,
)

SIM = SimConfig(
    api_key=SIM_KEY,
    models={  # escalations, cached input and reasoning, so every counter has something to add
        "gpt-4.1-nano": SimModelConfig(invalid_rate=0.2, cached_share=0.3),
        "gemini-2.0-flash-lite": SimModelConfig(invalid_rate=0.2, reasoning_tokens=7),
    },
)
SAMPLES = REPO / "cli" / "samples"
# `frugal worker ARGS` in a child process, its run_worker told to scrape its own /metrics over
# loopback once the drain is over (the server still runs then) and print what it got.
DRAIN_AND_SCRAPE = """
import sys, httpx
import cli.worker_main as worker_main
from cli.main import main

async def scrape(port):
    print(httpx.get(f"http://127.0.0.1:{port}/metrics").text)

run_worker = worker_main.run_worker
worker_main.run_worker = lambda config, kinds, drain, **kw: run_worker(config, kinds, drain, scrape, **kw)
sys.exit(main(["worker", *sys.argv[1:]]))
"""

# The label order of each family, as SPEC.md lists them.
LABELS = {
    "frugal_calls_total": ("provider", "model", "outcome"),
    "frugal_tokens_total": ("provider", "model", "class"),
    "frugal_cost_usd_total": ("provider", "model"),
    "frugal_records_total": ("kind", "result"),
    "frugal_breaker_state": ("provider", "state"),
}
Samples = dict[str, dict[tuple[str, ...], float]]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimThread]:
    with SimThread(SIM) as running:
        yield running


def scraped(text: str) -> Samples:
    """Sample name -> label values (in label order) -> value."""
    out: Samples = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            order = LABELS.get(s.name, tuple(sorted(s.labels)))
            out[s.name][tuple(s.labels[k] for k in order)] = s.value
    return out


def test_drained_samples_scrape_to_the_sums_in_usage(
    broker: EmbeddedBroker, sim: SimThread, prefix: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = write_config(
        tmp_path / "frugal.toml",
        prefix=prefix,
        data_dir=data,
        providers=sim_providers({"openai": sim.base_url, "gemini": sim.base_url}),
        models=[m for m in default_models() if m["provider"] in ("openai", "gemini")],
        budgets=[{"scope": "global", "window": "day", "limit_usd": 100.0}],
    )
    published = run_frugal(
        ["publish", "--config", str(config), str(SAMPLES)], bootstrap=broker.bootstrap
    )
    assert published.returncode == 0, published.stderr
    assert "published 224 records" in published.stdout  # 222 JSON records, a PDF, an image

    drained = subprocess.run(
        [
            sys.executable,
            "-c",
            DRAIN_AND_SCRAPE,
            "--config",
            str(config),
            "--drain",
            "--metrics-port",
            "0",
        ],  # any free port
        capture_output=True,
        text=True,
        timeout=180,
        env=frugal_env(broker.bootstrap),
        cwd=REPO,
    )
    assert drained.returncode == 0, drained.stderr[-3000:]
    got = scraped(drained.stdout)

    calls = lake_query(
        data, "SELECT provider, model, outcome, count(*) FROM usage_all GROUP BY ALL"
    )
    assert {tuple(r[:3]): float(r[3]) for r in calls} == got["frugal_calls_total"]
    assert {r[2] for r in calls} >= {"ok", "invalid_output"}  # escalations happened
    tokens = lake_query(
        data,
        """UNPIVOT (SELECT provider, model, sum(input_tokens) AS input,
                           sum(cached_input_tokens) AS cached_input,
                           sum(cache_write_tokens) AS cache_write,
                           sum(output_tokens) AS output, sum(reasoning_tokens) AS reasoning
                    FROM usage_all GROUP BY ALL)
           ON input, cached_input, cache_write, output, reasoning INTO NAME class VALUE n""",
    )
    expected_tokens = {tuple(r[:3]): float(r[3]) for r in tokens if r[3]}
    assert expected_tokens == got["frugal_tokens_total"]
    assert {k[2] for k in expected_tokens} >= {"input", "cached_input", "output", "reasoning"}
    cost = lake_query(data, "SELECT provider, model, sum(cost_usd) FROM usage_all GROUP BY ALL")
    assert got["frugal_cost_usd_total"].keys() == {tuple(r[:2]) for r in cost}
    for provider, model, usd in cost:
        assert got["frugal_cost_usd_total"][(provider, model)] == pytest.approx(usd, rel=1e-9)

    answered = lake_query(data, "SELECT kind, count(DISTINCT job_id) FROM results_all GROUP BY ALL")
    for kind, jobs in answered:
        assert got["frugal_records_total"][(kind, "answered")] == jobs
    assert got["frugal_records_total"][("ingest", "split")] == 14  # 12 documents, 2 files
    taken = got["frugal_records_taken_total"]
    assert taken[("ingest",)] == 14 and taken[("classify",)] >= 150
    assert set(got["frugal_in_flight"]) == {("openai",), ("gemini",)}
    assert all(v == 0 for v in got["frugal_in_flight"].values())  # drained: nothing on the wire
    assert got["frugal_breaker_state"][("openai", "closed")] == 1
    assert 0 < got["frugal_budget_used_ratio"][("global:*:day",)] < 0.01
    assert got["frugal_intake_paused"][()] in (0, 1)
    assert SIM_KEY not in drained.stdout + drained.stderr


def test_metrics_bind_to_loopback_and_serve_open_batches() -> None:
    assert WorkerConfig().metrics_host == "127.0.0.1" and WorkerConfig().metrics_port is None
    assert WorkerConfig(metrics_port=9464).metrics_port == 9464  # `[worker] metrics_port`
    metrics = PipelineMetrics()
    metrics.set_open_batches("openai", 3)
    with metrics_server(metrics, "127.0.0.1", 0) as port:
        assert port
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert scraped(text)["frugal_open_batches"] == {("openai",): 3.0}
    assert metrics.open_batches_total == 3
    with pytest.raises(httpx.ConnectError):  # stopped with its block
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_metrics_port_in_use_is_one_clear_line(
    broker: EmbeddedBroker, prefix: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "frugal.toml",
        prefix=prefix,
        data_dir=tmp_path / "data",
        providers=sim_providers({"openai": "http://127.0.0.1:9"}),
        models=default_models()[:1],
    )
    with metrics_server(PipelineMetrics(), "127.0.0.1", 0) as taken:
        done = run_frugal(
            ["worker", "--config", str(config), "--metrics-port", str(taken)],
            bootstrap=broker.bootstrap,
            timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("frugal: metrics: cannot listen on")
    assert "Traceback" not in done.stderr


async def test_live_gauges_read_429s_breakers_caps_and_intake_at_scrape_time() -> None:
    config = ProviderConfig(name="openai", base_url="http://127.0.0.1:9")
    limits = Limits([config])
    cap = BudgetConfig(scope="provider", match="openai", window="total", limit_usd=2.0)
    budgets = Budgets([cap])
    metrics = PipelineMetrics()
    metrics.sources.limits = limits
    metrics.sources.budgets = [cap]
    metrics.sources.spent = budgets.spent
    metrics.sources.intake_paused = lambda: True
    metrics.sources.records_in_flight = lambda: 7

    held = await budgets.reserve(CallScope("openai", "gpt-4o", "classify", "acme"), 0.5)
    assert held is not None
    limiter = limits["openai"]
    for _ in range(5):  # enough failures in a row to open the breaker
        limiter.breaker.failure()
    limiter.rate_limited = 3
    got = scraped(generate_latest(metrics.registry).decode())
    assert got["frugal_budget_used_ratio"] == {("provider:openai:total",): 0.25}
    assert got["frugal_rate_limited_total"] == {("openai",): 3.0}
    assert got["frugal_breaker_state"][("openai", "open")] == 1
    assert got["frugal_breaker_state"][("openai", "closed")] == 0
    assert got["frugal_intake_paused"] == {(): 1.0}
    assert got["frugal_records_in_flight"] == {(): 7.0}
