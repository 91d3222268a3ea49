"""OpenAI Chat Completions wire protocol: OpenAI, Azure OpenAI and OpenAI-compatible endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from providers.base import (
    HttpCall,
    ProviderAdapter,
    Reply,
    ToolCall,
    as_count,
    iter_sse_events,
    output_limit,
    schema_instruction,
    tool_name,
)
from providers.profiles import PROFILES, EndpointProfile, dig, first_present, profile_for
from providers.structured import StructuredMode, schema_is_enforced, structured_mode
from schemas.completion import CompletionRequest, Usage
from schemas.config import ModelConfig, ProviderConfig
from schemas.per_schema import once_per_schema

_NAMED_SUBSCHEMAS = ("properties", "$defs", "definitions")
_SUBSCHEMAS = ("items", "prefixItems", "anyOf", "allOf", "oneOf", "not", "additionalProperties")


def allows_strict(schema: Any) -> bool:
    """Strict mode needs every object closed (additionalProperties false) and fully required."""
    if isinstance(schema, list):
        return all(allows_strict(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if schema.get("type") == "object" or "properties" in schema:
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or ()) != set(properties):
            return False
    named = [s for key in _NAMED_SUBSCHEMAS for s in (schema.get(key) or {}).values()]
    nested = [schema[key] for key in _SUBSCHEMAS if key in schema]
    return all(allows_strict(s) for s in (*named, *nested))


# The walk costs ~5 us a call; remembered per schema it costs the key's ~0.4 us.
allows_strict_cached = once_per_schema(allows_strict)


def normalize_usage(raw: Any, profile: EndpointProfile = PROFILES["openai"]) -> Usage | None:
    """Chat Completions usage -> Usage; prompt_tokens already includes cached and cache writes."""
    if not isinstance(raw, Mapping) or (
        "prompt_tokens" not in raw and "completion_tokens" not in raw
    ):
        return None
    return Usage(
        input_tokens=as_count(raw.get("prompt_tokens")),
        cached_input_tokens=as_count(first_present(raw, profile.cached_tokens_paths)),
        cache_write_tokens=as_count(first_present(raw, profile.cache_write_paths)),
        output_tokens=as_count(raw.get("completion_tokens")),
        reasoning_tokens=as_count(dig(raw, "completion_tokens_details.reasoning_tokens")),
    )


def _content_text(content: Any) -> str:
    """A string, or (Mistral) a list of chunks whose `text` ones make the answer."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(c.get("text") or "")
            for c in content
            if isinstance(c, dict) and c.get("type") == "text"
        )
    return ""


def _cost(payload: Mapping[str, Any], profile: EndpointProfile) -> float | None:
    value = dig(payload, profile.cost_usd_path) if profile.cost_usd_path else None
    return float(value) if isinstance(value, int | float) else None


def parse_reply(payload: Mapping[str, Any], profile: EndpointProfile = PROFILES["openai"]) -> Reply:
    choice = (payload.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [
        ToolCall(str(fn.get("name") or ""), fn.get("arguments") or "{}")
        for tc in message.get("tool_calls") or ()
        if isinstance(fn := tc.get("function"), dict)
    ]
    finish = choice.get("finish_reason")
    refusal = message.get("refusal") or ("content filter" if finish == "content_filter" else None)
    return Reply(
        text=_content_text(message.get("content")),
        tool_calls=calls,
        usage=normalize_usage(first_present(payload, profile.usage_paths), profile),
        finish_reason=finish,
        response_id=payload.get("id"),
        refusal=refusal,
        provider_cost_usd=_cost(payload, profile),
    )


def parse_sse_usage(text: str, profile: EndpointProfile = PROFILES["openai"]) -> Reply:
    """The text, tool calls, finish reason and final usage of a streamed completion
    (usage arrives in a last chunk, under `usage`, or Groq's `x_groq.usage`)."""
    reply = Reply()
    parts: list[str] = []
    refusal: list[str] = []
    tools: dict[int, list[str]] = {}  # index -> [name, argument pieces...]
    for event in iter_sse_events(text):
        reply.response_id = reply.response_id or event.get("id")
        for choice in event.get("choices") or ():
            delta = choice.get("delta") or {}
            parts.append(_content_text(delta.get("content")))
            refusal.append(delta.get("refusal") or "")
            for tc in delta.get("tool_calls") or ():
                fn = tc.get("function") or {}
                entry = tools.setdefault(int(tc.get("index") or 0), [""])
                entry[0] = entry[0] or str(fn.get("name") or "")
                entry.append(str(fn.get("arguments") or ""))
            reply.finish_reason = choice.get("finish_reason") or reply.finish_reason
        reply.usage = (
            normalize_usage(first_present(event, profile.usage_paths), profile) or reply.usage
        )
        reply.provider_cost_usd = _cost(event, profile) or reply.provider_cost_usd
    reply.text = "".join(parts)
    reply.tool_calls = [ToolCall(e[0], "".join(e[1:])) for _, e in sorted(tools.items())]
    if any(refusal) or reply.finish_reason == "content_filter":
        reply.refusal = "".join(refusal) or "content filter"
    return reply


def user_content(request: CompletionRequest) -> str | list[dict[str, Any]]:
    """The prompt, or with images: `image_url` parts holding data URLs, then the text."""
    if not request.images:
        return request.prompt
    parts: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": f"data:{i.media_type};base64,{i.data_b64}"}}
        for i in request.images
    ]
    return [*parts, {"type": "text", "text": request.prompt}]


class OpenAIAdapter(ProviderAdapter):
    """Chat Completions; the endpoint's quirks come from its profile, not from subclasses."""

    protocol = "openai"

    def __init__(
        self, provider: ProviderConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.profile = profile_for(provider)
        self.upstream_error_path = self.profile.upstream_error_path
        super().__init__(provider, transport=transport)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {self.profile.auth_header: self.profile.auth_prefix + api_key}

    def build_call(self, model: ModelConfig, request: CompletionRequest) -> HttpCall:
        wanted = request.output_schema is not None
        mode = structured_mode(model, self.provider.kind) if wanted else None
        body: dict[str, Any] = {"messages": self._messages(request, mode)}
        if self.profile.model_in_body:
            body["model"] = model.model
        body[self.profile.max_tokens_field] = output_limit(model, request)
        if request.temperature is not None and "reasoning" not in model.capabilities:
            body["temperature"] = request.temperature  # reasoning models reject it
        if mode is not None:
            body.update(self._structured(request, mode))
        url = self.profile.chat_url(self.provider.base_url, model.model, self.provider.api_version)
        return HttpCall(url, body)

    @staticmethod
    def _messages(request: CompletionRequest, mode: StructuredMode | None) -> list[dict[str, Any]]:
        system = request.system
        if mode is not None and not schema_is_enforced(mode):  # say the schema in words
            system = "\n\n".join(s for s in (system, schema_instruction(request)) if s)
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        return [*messages, {"role": "user", "content": user_content(request)}]

    @staticmethod
    def _structured(request: CompletionRequest, mode: StructuredMode) -> dict[str, Any]:
        schema = request.output_schema or {}
        name = tool_name(request)
        strict = allows_strict_cached(schema)
        if mode == "json_schema":
            spec = {"name": name, "schema": schema, "strict": strict}
            return {"response_format": {"type": "json_schema", "json_schema": spec}}
        if mode == "tool":
            function: dict[str, Any] = {
                "name": name,
                "description": "Record the answer; the arguments are the answer object itself.",
                "parameters": schema,
            }
            if strict:
                function["strict"] = True
            return {
                "tools": [{"type": "function", "function": function}],
                "tool_choice": {"type": "function", "function": {"name": name}},
            }
        if mode == "json_object":
            return {"response_format": {"type": "json_object"}}
        return {}

    def parse_reply(self, payload: dict[str, Any]) -> Reply:
        return parse_reply(payload, self.profile)

    def parse_stream(self, text: str) -> Reply:
        return parse_sse_usage(text, self.profile)
