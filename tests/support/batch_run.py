"""Runs for the batch tests: classify jobs through an OpenAI-protocol and an Anthropic-protocol
simulator with batch APIs (short windows and delays), published and drained with the real CLI."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genai_prices import Usage as CatalogUsage
from genai_prices import calc_price

from bench.samples import support_tickets
from providers.sim import SimThread
from schemas.config import SimBatchConfig, SimConfig, SimModelConfig
from support.frugal_testkit import SIM_KEY, jsonl, run_frugal, sim_providers, write_config

BATCH = {"enabled": True, "window_s": 3600, "max_wait_s": 0.2, "poll_interval_s": 0.1}
MODELS: list[dict[str, Any]] = [
    {"name": "gpt-4.1-nano", "provider": "openai", "model": "gpt-4.1-nano", "tier": 1,
     "capabilities": ["json_schema", "tools"]},
    {"name": "gpt-4.1-mini", "provider": "openai", "model": "gpt-4.1-mini", "tier": 1,
     "capabilities": ["json_schema", "tools"]},
    {"name": "claude-3-5-haiku", "provider": "anthropic", "model": "claude-3-5-haiku-latest",
     "tier": 1, "capabilities": ["tools"]},
    {"name": "claude-sonnet-4", "provider": "anthropic", "model": "claude-sonnet-4-0",
     "tier": 1, "capabilities": ["tools"]},
]  # fmt: skip
CATALOG_PROVIDER = {"openai": "openai", "anthropic": "anthropic"}
TOKENS = ("input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens")


def sims(**batch: Any) -> dict[str, SimConfig]:
    """The cheap model of each provider answers a share of jobs invalidly."""
    settings = SimBatchConfig(**{"completion_delay_s": 0.5, **batch})
    return {
        "openai": SimConfig(
            api_key=SIM_KEY, batch=settings,
            models={"gpt-4.1-nano": SimModelConfig(invalid_rate=0.1)},
        ),
        "anthropic": SimConfig(
            api_key=SIM_KEY, batch=settings,
            models={"claude-3-5-haiku-latest": SimModelConfig(invalid_rate=0.1)},
        ),
    }  # fmt: skip


def jobs(n: int, deadline: str | None, prefix: str = "ticket") -> list[dict[str, Any]]:
    found = support_tickets(n, prefix=prefix)
    for i, job in enumerate(found):
        job["providers"] = ["openai" if i % 2 else "anthropic"]
        if deadline is not None:
            job["deadline"] = deadline
    return found


@dataclass
class BatchRun:
    config: Path
    bootstrap: str
    jobs: list[dict[str, Any]] = field(default_factory=list)
    bills: dict[str, dict[str, Any]] = field(default_factory=dict)

    def frugal(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return run_frugal([*args[:1], "--config", str(self.config), *args[1:]],
                          bootstrap=self.bootstrap, **kwargs)  # fmt: skip

    def sql(self, query: str) -> list[dict[str, Any]]:
        done = self.frugal(["sql", "--format", "json", query])
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows

    def publish(self, jobs: list[dict[str, Any]]) -> None:
        self.jobs += jobs
        done = self.frugal(["publish", "-"], stdin=jsonl(jobs))
        assert done.returncode == 0, done.stderr

    def drain(self, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = self.frugal(["worker", "--drain", "-v"], timeout=timeout)
        assert done.returncode == 0, done.stderr[-3000:]
        return done


def batch_config(tmp: Path, prefix: str, running: dict[str, SimThread], **sections: Any) -> Path:
    providers = sim_providers({n: s.base_url for n, s in running.items()}, batch=True)
    return write_config(
        tmp / "frugal.toml", prefix=prefix, data_dir=tmp / "data", providers=providers,
        models=[m for m in MODELS if m["provider"] in running], batch={**BATCH, **sections.pop("batch", {})},
        retry={"max_retries": 3, "base_delay_s": 0.05, "max_delay_s": 0.5}, **sections,
    )  # fmt: skip


def catalog_dollars(provider: str, model: str, bill: dict[str, Any], batch: bool = False) -> float:
    """The bill priced by genai-prices: for batches its batch variant where it has one, else
    half the list price (the providers' batch discount)."""
    usage = CatalogUsage(
        input_tokens=bill["input_tokens"],
        cache_read_tokens=bill["cached_input_tokens"],
        cache_write_tokens=bill["cache_write_tokens"],
        output_tokens=bill["output_tokens"],
    )
    catalog = CATALOG_PROVIDER[provider]
    listed = float(calc_price(usage, model, provider_id=catalog).total_price)
    if not batch:
        return listed
    context = {"processing": "batch"}
    batched = float(
        calc_price(usage, model, provider_id=catalog, price_context=context).total_price
    )
    return batched if batched != listed else listed * 0.5
