"""What one provider call returns, normalized the same way for every wire protocol."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Usage(BaseModel):
    """Token counts as the provider reported them, normalized (see SPEC: usage table).

    `input_tokens` counts every input token, cached or not; `output_tokens` counts every
    billed output token, reasoning included.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False  # True when the provider sent no usage and we estimated it

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
            estimated=self.estimated or other.estimated,
        )


class RateLimitState(BaseModel):
    """What the provider's rate-limit headers said about remaining quota."""

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    limit_requests: int | None = None
    limit_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None


class ImageInput(BaseModel):
    """One image sent with the prompt; its bytes are never printed (repr, logs, errors)."""

    media_type: str
    data_b64: str = Field(repr=False)
    label: str = ""  # how to name it in messages: path and hash, never bytes


class CompletionRequest(BaseModel):
    """One call: instructions, the user's input, and the output schema when structured."""

    system: str | None = None
    prompt: str
    images: list[ImageInput] = Field(default_factory=list, repr=False)
    output_schema: dict[str, Any] | None = None
    schema_name: str = "output"
    max_output_tokens: int = 1024
    temperature: float | None = 0.0


class Completion(BaseModel):
    output: Any = None  # parsed JSON object for structured calls, else the text
    text: str = ""
    usage: Usage = Field(default_factory=Usage)
    provider: str = ""
    model: str = ""
    response_id: str | None = None
    finish_reason: str | None = None
    latency_ms: float = 0.0
    provider_cost_usd: float | None = None  # when the provider reports it (OpenRouter)
    rate_limit: RateLimitState | None = None
