"""Gemini generateContent wire protocol; the key travels in x-goog-api-key, never in the URL."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from providers.base import (
    HttpCall,
    ProviderAdapter,
    Reply,
    ToolCall,
    as_count,
    iter_sse_events,
    output_limit,
)
from schemas.completion import CompletionRequest, Usage
from schemas.config import ModelConfig

# finishReason / blockReason values that mean a safety or policy block, not an answer
BLOCKED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    }
)


def normalize_usage(raw: Any) -> Usage | None:
    """usageMetadata -> Usage. candidatesTokenCount EXCLUDES thoughts; promptTokenCount
    includes cached content."""
    if not isinstance(raw, Mapping) or (
        "promptTokenCount" not in raw and "candidatesTokenCount" not in raw
    ):
        return None
    thoughts = as_count(raw.get("thoughtsTokenCount"))
    return Usage(
        input_tokens=as_count(raw.get("promptTokenCount"))
        + as_count(raw.get("toolUsePromptTokenCount")),
        cached_input_tokens=as_count(raw.get("cachedContentTokenCount")),
        output_tokens=as_count(raw.get("candidatesTokenCount")) + thoughts,
        reasoning_tokens=thoughts,
    )


def _reply_from_chunks(chunks: Iterable[Mapping[str, Any]]) -> Reply:
    """One reply from a whole response or from every chunk of a stream, in order."""
    reply = Reply()
    parts: list[str] = []
    for chunk in chunks:
        reply.response_id = reply.response_id or chunk.get("responseId")
        reply.usage = normalize_usage(chunk.get("usageMetadata")) or reply.usage
        block = (chunk.get("promptFeedback") or {}).get("blockReason")
        if block:
            reply.refusal = f"prompt blocked: {block}"
        candidate = (chunk.get("candidates") or [{}])[0]
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "text" in part and not part.get("thought"):
                parts.append(str(part["text"]))
            call = part.get("functionCall")
            if isinstance(call, dict):
                reply.tool_calls.append(
                    ToolCall(str(call.get("name") or ""), call.get("args") or {})
                )
        reply.finish_reason = candidate.get("finishReason") or reply.finish_reason
    reply.text = "".join(parts)
    if reply.finish_reason in BLOCKED:
        reply.refusal = f"answer blocked: finishReason {reply.finish_reason}"
    return reply


def parse_reply(payload: Mapping[str, Any]) -> Reply:
    return _reply_from_chunks([payload])


def parse_sse_usage(text: str) -> Reply:
    """Text and usage of streamGenerateContent?alt=sse: every chunk repeats usageMetadata,
    the last one is final."""
    return _reply_from_chunks(iter_sse_events(text))


def user_parts(request: CompletionRequest) -> list[dict[str, Any]]:
    """The prompt's parts: `inlineData` for each image (base64), then the text."""
    images = [
        {"inlineData": {"mimeType": i.media_type, "data": i.data_b64}} for i in request.images
    ]
    return [*images, {"text": request.prompt}]


class GeminiAdapter(ProviderAdapter):
    protocol = "gemini"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def build_call(self, model: ModelConfig, request: CompletionRequest) -> HttpCall:
        config: dict[str, Any] = {"maxOutputTokens": output_limit(model, request)}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.output_schema is not None:
            config["responseMimeType"] = "application/json"
            config["responseJsonSchema"] = request.output_schema
        body: dict[str, Any] = {
            "contents": [{"role": "user", "parts": user_parts(request)}],
            "generationConfig": config,
        }
        if request.system:
            body["systemInstruction"] = {"parts": [{"text": request.system}]}
        model_id = quote(model.model.removeprefix("models/"), safe="")
        url = f"{self.provider.base_url.rstrip('/')}/models/{model_id}:generateContent"
        return HttpCall(url, body)

    def parse_reply(self, payload: dict[str, Any]) -> Reply:
        return parse_reply(payload)

    def parse_stream(self, text: str) -> Reply:
        return parse_sse_usage(text)
