"""The benchmark workload: jobs with known answers, the simulated provider and its config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomli_w

from bench.samples import invoices, support_tickets

BENCH_KEY = "sk-bench-0123456789abcdef"
KEY_ENV = "FRUGAL_BENCH_KEY"
EXTRACT_SHARE = 0.2  # one job in five is an extraction (JSON Schema), the rest classifications

# Only OpenAI-protocol models, so every baseline makes exactly the calls the worker makes.
MODELS: list[dict[str, Any]] = [
    {
        "name": "gpt-4.1-nano",
        "provider": "openai",
        "model": "gpt-4.1-nano",
        "tier": 1,
        "capabilities": ["json_schema"],
        "input_per_mtok": 0.10,
        "output_per_mtok": 0.40,
        "cached_input_per_mtok": 0.025,
    },
    {
        "name": "gpt-4o-mini",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "tier": 2,
        "capabilities": ["json_schema"],
        "input_per_mtok": 0.15,
        "output_per_mtok": 0.60,
        "cached_input_per_mtok": 0.075,
    },
    {
        "name": "gpt-4o",
        "provider": "openai",
        "model": "gpt-4o",
        "tier": 3,
        "capabilities": ["json_schema"],
        "input_per_mtok": 2.50,
        "output_per_mtok": 10.0,
        "cached_input_per_mtok": 1.25,
    },
]
CHEAPEST = MODELS[0]  # what routing picks for every job (the simulator answers validly)


def jobs(n: int, tag: str) -> list[dict[str, Any]]:
    """`n` jobs, ids unique per `tag` so runs on one broker never collide."""
    extract = int(n * EXTRACT_SHARE)
    return support_tickets(n - extract, prefix=f"{tag}-t") + invoices(extract, prefix=f"{tag}-i")


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def write_sim_config(path: Path) -> Path:
    path.write_text(tomli_w.dumps({"sim": {"latency_ms": 0.0, "api_key": BENCH_KEY}}))
    return path


def write_worker_config(
    path: Path, *, prefix: str, data_dir: Path, sim_url: str, knobs: dict[str, dict[str, Any]]
) -> Path:
    """A worker config for one run; `knobs` overrides sections (worker, storage, kafka, ...)."""
    config: dict[str, Any] = {
        "kafka": {
            "bootstrap": "embedded",
            "topic_prefix": prefix,
            "group_id": f"{prefix}-workers",
            "session_timeout_s": 2,
        },
        "storage": {"data_dir": str(data_dir)},
        "providers": [
            {
                "name": "openai",
                "kind": "openai",
                "base_url": f"{sim_url}/v1",
                "api_key_env": KEY_ENV,
                "max_concurrency": 64,
                "timeout_s": 30,
            }
        ],
        "models": MODELS,
        "routes": {"classify": {"min_tier": 1}, "extract": {"min_tier": 1}},
    }
    for section, values in knobs.items():
        config[section] = {**config.get(section, {}), **values}
    path.write_text(tomli_w.dumps(config))
    return path
