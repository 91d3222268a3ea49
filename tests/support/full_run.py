"""A full run for the accounting and secrets tests: 500 jobs through three independent
simulated providers (OpenAI, Anthropic, Gemini) that bill cached and reasoning tokens and
answer some calls with 429, 5xx and 529, published and drained with the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.samples import invoices, support_tickets
from providers.sim import SimThread
from schemas.config import SimConfig, SimModelConfig
from support.frugal_testkit import SIM_KEY, jsonl, run_frugal, sim_providers, write_config

SIM_RPM = 900  # each provider's real limit; Frugal is told more, so ~5% of calls get a 429
CONFIGURED_RPM = 1500

# provider -> its simulator: faults, and per model the share of input read from cache and the
# reasoning tokens per answer. The cheap model of each provider fails validation sometimes, so
# jobs escalate to the dearer one.
SIMS: dict[str, SimConfig] = {
    "openai": SimConfig(
        api_key=SIM_KEY,
        rpm=SIM_RPM,
        fail_rate=0.03,
        models={
            "gpt-4.1-nano": SimModelConfig(cached_share=0.5, invalid_rate=0.15),
            "o4-mini": SimModelConfig(cached_share=0.25, reasoning_tokens=64),
        },
    ),
    "anthropic": SimConfig(
        api_key=SIM_KEY,
        rpm=SIM_RPM,
        fail_rate=0.02,
        overloaded_rate=0.05,  # 529 overloaded_error
        models={
            "claude-3-5-haiku-latest": SimModelConfig(cached_share=0.4, invalid_rate=0.15),
            "claude-sonnet-4-0": SimModelConfig(reasoning_tokens=40),
        },
    ),
    "gemini": SimConfig(
        api_key=SIM_KEY,
        rpm=SIM_RPM,
        fail_rate=0.03,
        models={
            "gemini-2.0-flash-lite": SimModelConfig(invalid_rate=0.15),
            "gemini-2.5-flash": SimModelConfig(cached_share=0.3, reasoning_tokens=48),
        },
    ),
}
# routing name, provider, the provider's model id, tier, capabilities; prices from genai-prices
MODELS: list[dict[str, Any]] = [
    {"name": "gpt-4.1-nano", "provider": "openai", "model": "gpt-4.1-nano", "tier": 1},
    {"name": "o4-mini", "provider": "openai", "model": "o4-mini", "tier": 2},
    {"name": "claude-3-5-haiku", "provider": "anthropic", "model": "claude-3-5-haiku-latest"},
    {"name": "claude-sonnet-4", "provider": "anthropic", "model": "claude-sonnet-4-0", "tier": 3},
    {"name": "gemini-2.0-flash-lite", "provider": "gemini", "model": "gemini-2.0-flash-lite"},
    {"name": "gemini-2.5-flash", "provider": "gemini", "model": "gemini-2.5-flash", "tier": 2},
]
CAPABILITIES = {
    "openai": ["json_schema", "tools"],
    "anthropic": ["tools"],
    "gemini": ["json_schema"],
}
CATALOG_PROVIDER = {"openai": "openai", "anthropic": "anthropic", "gemini": "google"}


def model_id(routing_name: str) -> str:
    return next(m["model"] for m in MODELS if m["name"] == routing_name)


def workload(tickets: int = 300, invoice_jobs: int = 200) -> list[dict[str, Any]]:
    """Mixed classify/extract jobs with known answers, spread evenly over the providers."""
    jobs = support_tickets(tickets) + invoices(invoice_jobs)
    for i, job in enumerate(jobs):
        job["providers"] = [list(SIMS)[i % len(SIMS)]]
    return jobs


@dataclass
class FullRun:
    """What a drained run left behind, and every CLI output it printed on the way."""

    config: Path
    data_dir: Path
    bootstrap: str
    jobs: list[dict[str, Any]]
    bills: dict[str, dict[str, Any]] = field(default_factory=dict)  # provider -> sim /stats
    outputs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    drain_s: float = 0.0

    def frugal(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        done = run_frugal(args, bootstrap=self.bootstrap, **kwargs)
        self.outputs.append(done)
        return done

    def sql(self, query: str) -> list[dict[str, Any]]:
        done = self.frugal(["sql", "--config", str(self.config), "--format", "json", query])
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows


def run_config(
    path: Path, prefix: str, base_urls: dict[str, str], key_envs: dict[str, str] | None = None
) -> Path:
    providers = sim_providers(base_urls, rpm=CONFIGURED_RPM)
    for provider in providers:
        provider["api_key_env"] = (key_envs or {}).get(provider["name"], provider["api_key_env"])
    models = [
        {**m, "capabilities": CAPABILITIES[m["provider"]], "tier": m.get("tier", 1)} for m in MODELS
    ]
    return write_config(
        path,
        prefix=prefix,
        data_dir=path.parent / "data",
        providers=providers,
        models=models,
        retry={"max_retries": 8, "base_delay_s": 0.05, "max_delay_s": 0.5},
        worker={"status_interval_s": 1.0},
    )


@contextmanager
def simulators(sims: dict[str, SimConfig]) -> Iterator[dict[str, SimThread]]:
    """One simulator per provider, each on its own port: independent accounts and bills."""
    with ExitStack() as stack:
        yield {name: stack.enter_context(SimThread(cfg)) for name, cfg in sims.items()}


def publish_and_drain(run: FullRun, timeout_s: float = 240) -> None:
    published = run.frugal(["publish", "--config", str(run.config), "-"], stdin=jsonl(run.jobs))
    assert published.returncode == 0, published.stderr
    assert f"published {len(run.jobs)} records" in published.stdout
    started = time.monotonic()
    drain = run.frugal(["worker", "--config", str(run.config), "--drain", "-v"], timeout=timeout_s)
    run.drain_s = time.monotonic() - started
    assert drain.returncode == 0, drain.stderr[-3000:]


def full_run(
    tmp: Path,
    bootstrap: str,
    prefix: str,
    sims: dict[str, SimConfig],
    jobs: list[dict[str, Any]] | None = None,
    key_envs: dict[str, str] | None = None,
) -> FullRun:
    """Publish the workload, drain it, and keep each simulator's bill.

    `key_envs` names, per provider, the environment variable its key is read from (default:
    the one holding SIM_KEY).
    """
    with simulators(sims) as running:
        base_urls = {name: s.base_url for name, s in running.items()}
        config = run_config(tmp / "frugal.toml", prefix, base_urls, key_envs)
        run = FullRun(config, tmp / "data", bootstrap, workload() if jobs is None else jobs)
        publish_and_drain(run)
        run.bills = {name: s.stats() for name, s in running.items()}
    return run
