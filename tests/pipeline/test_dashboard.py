"""The Grafana dashboard and the compose services beside it match the metrics a worker serves."""

from __future__ import annotations

import json
import re

import yaml
from prometheus_client import generate_latest
from support.frugal_testkit import REPO

from pipeline.metrics import PipelineMetrics


def served_names() -> set[str]:
    """Sample names of every family a fresh worker lists (labelled ones have no samples yet)."""
    text = generate_latest(PipelineMetrics().registry).decode()
    return set(re.findall(r"^# TYPE (\w+) ", text, re.M))  # counters as <name>_total


def test_every_metric_on_the_dashboard_is_one_a_worker_serves() -> None:
    dashboard = json.loads((REPO / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for e in exprs for name in re.findall(r"\bfrugal_\w+", e)}
    assert used <= served_names(), used - served_names()
    spec = {"frugal_records_total", "frugal_calls_total", "frugal_tokens_total",
            "frugal_cost_usd_total", "frugal_in_flight", "frugal_budget_used_ratio"}  # fmt: skip
    assert spec <= used


def test_compose_runs_prometheus_on_the_workers_metrics_port_and_grafana() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    worker = compose["services"]["worker"]["command"]
    port = int(worker[worker.index("--metrics-port") + 1])
    assert worker[worker.index("--metrics-host") + 1] == "0.0.0.0"
    prometheus = yaml.safe_load(compose["configs"]["prometheus"]["content"])
    (target,) = prometheus["scrape_configs"][0]["dns_sd_configs"]
    assert target["names"] == ["worker"] and target["port"] == port
    grafana = compose["services"]["grafana"]
    assert any("grafana-dashboard.json" in v for v in grafana["volumes"])
    assert {"prometheus", "grafana"} <= set(compose["services"])
