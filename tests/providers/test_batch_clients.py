"""The batch clients and the simulator's batch APIs speak the same wire formats: submit, poll,
read every result back by custom id (in any order), per-request errors, expiry, cancel."""

from __future__ import annotations

import asyncio

import pytest

from providers.batch_base import CANCELLED, ENDED, EXPIRED, BatchClient, BatchEntry, BatchState
from providers.batch_registry import batch_enabled, build_batch_client
from providers.registry import build_adapter
from providers.sim import start_sim
from schemas.completion import CompletionRequest
from schemas.config import ModelConfig, ProviderConfig, SimBatchConfig, SimConfig
from schemas.errors import RateLimited, ServerError

LABEL = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["bug", "billing"]}},
    "required": ["label"],
    "additionalProperties": False,
}
PROTOCOLS = [("openai", "/v1"), ("anthropic", "/v1"), ("gemini", "/v1beta")]
REQUESTS = {
    f"r{i}": CompletionRequest(system="Classify.", prompt=f"ticket {i}: invoice wrong",
                               output_schema=LABEL, max_output_tokens=32)
    for i in range(12)
}  # fmt: skip


def _client(kind: str, url: str) -> BatchClient:
    provider = ProviderConfig(name=kind, kind=kind, base_url=url, api_key="sk-sim", batch=True)  # type: ignore[arg-type]
    client = build_batch_client(build_adapter(provider))
    assert client is not None
    return client


async def _until_final(client: BatchClient, batch_id: str) -> BatchState:
    for _ in range(100):
        state = await client.state(batch_id)
        if state.final:
            return state
        await asyncio.sleep(0.05)
    raise AssertionError("batch did not end")


@pytest.mark.parametrize(("kind", "path"), PROTOCOLS)
async def test_a_batch_is_submitted_polled_and_read_back_by_custom_id(kind: str, path: str) -> None:
    sim = await start_sim(SimConfig(batch=SimBatchConfig(completion_delay_s=0.2, fail_rate=0.25)))
    client = _client(kind, sim.base_url + path)
    model = ModelConfig(name="m", provider=kind, model="sim-model", capabilities=["json_schema"])
    try:
        entries = [BatchEntry(cid, r) for cid, r in REQUESTS.items()]
        batch_id = await client.submit(model, entries)
        assert not (await client.state(batch_id)).final
        state = await _until_final(client, batch_id)
        assert state.status == ENDED
        outcomes = await client.results(state, model, REQUESTS)
        assert sorted(o.custom_id for o in outcomes) == sorted(REQUESTS)
        answered = [o for o in outcomes if o.completion is not None]
        failed = [o for o in outcomes if o.error is not None]
        assert answered and failed and len(answered) + len(failed) == len(REQUESTS)
        for o in answered:
            assert o.completion is not None and o.completion.output["label"] in ("bug", "billing")
            assert o.completion.usage.input_tokens > 0
        assert all(isinstance(o.error, ServerError) for o in failed)
        billed = sim.stats()["batch"]
        assert billed["ok"] == len(answered) and billed["usage"]["input_tokens"] == sum(
            o.completion.usage.input_tokens for o in answered if o.completion
        )
    finally:
        await client.aclose()
        await client.adapter.aclose()
        await sim.stop()


@pytest.mark.parametrize(("kind", "path"), PROTOCOLS)
async def test_expired_and_cancelled_requests_come_back_unanswered(kind: str, path: str) -> None:
    sim = await start_sim(SimConfig(batch=SimBatchConfig(completion_delay_s=0.2, expire=True)))
    client = _client(kind, sim.base_url + path)
    model = ModelConfig(name="m", provider=kind, model="sim-model")
    try:
        entries = [BatchEntry(cid, r) for cid, r in REQUESTS.items()]
        expired = await _until_final(client, await client.submit(model, entries))
        assert expired.status == EXPIRED
        assert all(o.unanswered for o in await client.results(expired, model, REQUESTS))
        sim.patch(batch={"completion_delay_s": 60})
        second = await client.submit(model, entries)
        await client.cancel(second)
        cancelled = await _until_final(client, second)
        assert cancelled.status == CANCELLED
        assert all(o.unanswered for o in await client.results(cancelled, model, REQUESTS))
        assert sim.stats()["batch"]["ok"] == 0  # nothing billed
    finally:
        await client.aclose()
        await client.adapter.aclose()
        await sim.stop()


@pytest.mark.parametrize(("kind", "path"), PROTOCOLS)
async def test_a_full_batch_queue_refuses_creation_with_a_rate_limit(kind: str, path: str) -> None:
    sim = await start_sim(SimConfig(batch=SimBatchConfig(completion_delay_s=60, max_open=1)))
    client = _client(kind, sim.base_url + path)
    model = ModelConfig(name="m", provider=kind, model="sim-model")
    entries = [BatchEntry(cid, r) for cid, r in REQUESTS.items()]
    try:
        await client.submit(model, entries)
        with pytest.raises(RateLimited):  # the batcher backs off and keeps the requests
            await client.submit(model, entries)
        assert sim.stats()["batch"]["batches_refused"] == 1
    finally:
        await client.aclose()
        await client.adapter.aclose()
        await sim.stop()


def test_batch_is_on_by_default_only_for_the_public_apis() -> None:
    def provider(kind: str, url: str, **extra: object) -> ProviderConfig:
        return ProviderConfig.model_validate({"name": "p", "kind": kind, "base_url": url, **extra})

    assert batch_enabled(provider("openai", "https://api.openai.com/v1"))
    assert batch_enabled(provider("anthropic", "https://api.anthropic.com/v1"))
    assert batch_enabled(provider("gemini", "https://generativelanguage.googleapis.com/v1beta"))
    assert not batch_enabled(provider("openai", "https://api.deepseek.com/v1"))
    assert not batch_enabled(provider("openai", "https://api.openai.com/v1", batch=False))
    assert batch_enabled(provider("openai", "http://127.0.0.1:8099/v1", batch=True))
    assert not batch_enabled(provider("azure-openai", "https://x.openai.azure.com", batch=True))
