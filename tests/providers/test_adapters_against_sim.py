"""The adapters and the simulator speak the same wire formats (the demo depends on it)."""

from __future__ import annotations

import pytest

from providers.registry import build_adapter
from providers.sim import start_sim
from schemas.completion import CompletionRequest
from schemas.config import ModelConfig, ProviderConfig, SimConfig
from schemas.errors import AuthError, ProviderError, RateLimited

LABEL = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["bug", "billing"]}},
    "required": ["label"],
    "additionalProperties": False,
}
PROTOCOLS = [("openai", "/v1"), ("azure-openai", ""), ("anthropic", "/v1"), ("gemini", "/v1beta")]


@pytest.mark.parametrize(("kind", "path"), PROTOCOLS)
async def test_structured_call_then_rate_limit_then_bad_key(kind: str, path: str) -> None:
    sim = await start_sim(SimConfig(api_key="sk-sim", rpm=1))
    model = ModelConfig(name="m", provider=kind, model="sim-model", capabilities=["json_schema"])
    request = CompletionRequest(prompt="my invoice is wrong", output_schema=LABEL)
    try:
        for key, expected in (("sk-sim", None), ("sk-sim", RateLimited), ("sk-wrong", AuthError)):
            provider = ProviderConfig.model_validate(
                {"name": kind, "kind": kind, "base_url": sim.base_url + path, "api_key": key}
            )
            adapter = build_adapter(provider)
            try:
                if expected is None:
                    completion = await adapter.complete(model, request)
                    assert completion.output["label"] in ("bug", "billing")
                    assert completion.usage.input_tokens > 0 and not completion.usage.estimated
                    continue
                with pytest.raises(ProviderError) as info:
                    await adapter.complete(model, request)
                assert type(info.value) is expected
                if expected is RateLimited:
                    assert info.value.retry_after_s is not None and info.value.retry_after_s > 0
            finally:
                await adapter.aclose()
    finally:
        await sim.stop()
