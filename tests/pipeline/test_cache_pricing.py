"""The expected cost counts cache reads (0.1x input) and cache writes (1.25x), as learned, and
Anthropic requests mark the shared prefix for caching only when it is long enough."""

from __future__ import annotations

import pytest

from pipeline.prompts import build_request
from pipeline.routing import Router
from providers.anthropic import AnthropicAdapter
from providers.pricing import ModelPrices
from schemas.config import Config, ModelConfig, ProviderConfig
from schemas.jobs import parse_job

MODEL = ModelConfig(name="claude", provider="anthropic", model="claude-sonnet-4-0")
PRICES = ModelPrices(input_per_mtok=1.0, output_per_mtok=0.0, cached_input_per_mtok=0.1,
                     cache_write_per_mtok=1.25)  # fmt: skip
PROVIDER = ProviderConfig(name="anthropic", kind="anthropic", base_url="http://127.0.0.1:9/v1")


def test_expected_cost_counts_learned_cache_reads_and_writes() -> None:
    router = Router(Config(providers=[PROVIDER], models=[MODEL]), {"claude": PRICES})
    assert router.price(MODEL, 1_000_000, 0) == pytest.approx(1.0)
    # 10 calls of 1,000 input tokens: the first wrote 800 to cache, the nine others read them
    router.stats.record("claude", "classify", True, 5, 1000, 0, 800)
    for _ in range(9):
        router.stats.record("claude", "classify", True, 5, 1000, 800, 0)
    cached, written = 7200 / 10_000, 800 / 10_000
    expected = (1 - cached - written) * 1.0 + cached * 0.1 + written * 1.25
    assert router.price(MODEL, 1_000_000, 0) == pytest.approx(expected, rel=1e-3)


def _system(instructions: str) -> object:
    job = parse_job({"id": "a", "kind": "classify", "labels": ["x", "y"], "prompt": instructions})
    call = AnthropicAdapter(PROVIDER).build_call(MODEL, build_request(job, 16))
    return call.body["system"]


def test_a_long_shared_prefix_is_marked_for_anthropics_cache_and_a_short_one_is_not() -> None:
    assert isinstance(_system("Be brief."), str)
    long = _system("Weigh every word of the ticket before choosing a label. " * 200)
    assert isinstance(long, list) and long[0]["cache_control"] == {"type": "ephemeral"}
    assert long[0]["text"].startswith("Classify the text")  # shared instructions first
