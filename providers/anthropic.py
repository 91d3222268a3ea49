"""Anthropic Messages wire protocol; structured output is one forced tool, read back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.base import (
    HttpCall,
    ProviderAdapter,
    Reply,
    ToolCall,
    as_count,
    iter_sse_events,
    output_limit,
    tool_name,
)
from providers.caching import worth_caching
from providers.profiles import dig
from schemas.completion import CompletionRequest, Usage
from schemas.config import ModelConfig

ANTHROPIC_VERSION = "2023-06-01"


def normalize_usage(raw: Any) -> Usage | None:
    """Messages usage -> Usage. Anthropic's input_tokens EXCLUDES cache reads and writes."""
    if not isinstance(raw, Mapping) or ("input_tokens" not in raw and "output_tokens" not in raw):
        return None
    cached = as_count(raw.get("cache_read_input_tokens"))
    written = as_count(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=as_count(raw.get("input_tokens")) + cached + written,
        cached_input_tokens=cached,
        cache_write_tokens=written,
        output_tokens=as_count(raw.get("output_tokens")),
        # only newer responses count thinking apart; older ones fold it into output_tokens
        reasoning_tokens=as_count(dig(raw, "output_tokens_details.thinking_tokens")),
    )


def _refusal(stop_reason: Any, text: str) -> str | None:
    return (text.strip() or "stop_reason refusal") if stop_reason == "refusal" else None


def parse_reply(payload: Mapping[str, Any]) -> Reply:
    blocks = [b for b in payload.get("content") or () if isinstance(b, dict)]
    text = "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
    stop = payload.get("stop_reason")
    return Reply(
        text=text,
        tool_calls=[
            ToolCall(str(b.get("name") or ""), b.get("input") or {})
            for b in blocks
            if b.get("type") == "tool_use"
        ],
        usage=normalize_usage(payload.get("usage")),
        finish_reason=stop,
        response_id=payload.get("id"),
        refusal=_refusal(stop, text),
    )


def parse_sse_usage(text: str) -> Reply:
    """Text, tool input and usage of a streamed message: `message_start` carries the input
    usage, each `message_delta` the cumulative output usage."""
    reply = Reply()
    usage: dict[str, Any] = {}
    parts: list[str] = []
    tools: dict[int, list[str]] = {}  # block index -> [name, partial_json pieces...]
    for event in iter_sse_events(text):
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            reply.response_id = message.get("id")
            usage.update(message.get("usage") or {})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                tools[int(event.get("index") or 0)] = [str(block.get("name") or "")]
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta":
                parts.append(str(delta.get("text") or ""))
            elif delta.get("type") == "input_json_delta":
                tools.setdefault(int(event.get("index") or 0), [""]).append(
                    str(delta.get("partial_json") or "")
                )
        elif kind == "message_delta":
            reply.finish_reason = (event.get("delta") or {}).get(
                "stop_reason"
            ) or reply.finish_reason
            usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
    reply.text = "".join(parts)
    reply.tool_calls = [ToolCall(t[0], "".join(t[1:]) or "{}") for _, t in sorted(tools.items())]
    reply.usage = normalize_usage(usage)
    reply.refusal = _refusal(reply.finish_reason, reply.text)
    return reply


def user_content(request: CompletionRequest) -> str | list[dict[str, Any]]:
    """The prompt, or with images: `image` blocks with a base64 source, then the text."""
    if not request.images:
        return request.prompt
    blocks: list[dict[str, Any]] = [
        {
            "type": "image",
            "source": {"type": "base64", "media_type": i.media_type, "data": i.data_b64},
        }
        for i in request.images
    ]
    return [*blocks, {"type": "text", "text": request.prompt}]


class AnthropicAdapter(ProviderAdapter):
    protocol = "anthropic"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def static_headers(self) -> dict[str, str]:
        return {"anthropic-version": ANTHROPIC_VERSION}

    def build_call(self, model: ModelConfig, request: CompletionRequest) -> HttpCall:
        body: dict[str, Any] = {
            "model": model.model,
            "max_tokens": output_limit(model, request),
            "messages": [{"role": "user", "content": user_content(request)}],
        }
        if request.system and worth_caching(model.model, request):
            # the shared prefix (tools, then instructions) is read from cache on later calls
            cached = {
                "type": "text",
                "text": request.system,
                "cache_control": {"type": "ephemeral"},
            }
            body["system"] = [cached]
        elif request.system:
            body["system"] = request.system
        if request.temperature is not None and "reasoning" not in model.capabilities:
            body["temperature"] = request.temperature
        if request.output_schema is not None:
            name = tool_name(request)
            body["tools"] = [
                {
                    "name": name,
                    "description": "Record the answer; the input is the answer object itself.",
                    "input_schema": request.output_schema,
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": name}
        return HttpCall(self.provider.base_url.rstrip("/") + "/messages", body)

    def parse_reply(self, payload: dict[str, Any]) -> Reply:
        return parse_reply(payload)

    def parse_stream(self, text: str) -> Reply:
        return parse_sse_usage(text)
