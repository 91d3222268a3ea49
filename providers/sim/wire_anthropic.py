"""Simulator wire format for the Anthropic Messages API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.sim.answers import Answer
from providers.sim.vision import look_at
from providers.sim.wire import (
    BadRequest,
    ErrorKind,
    LimitView,
    Reply,
    SimRequest,
    SimUsage,
    count_tokens,
    iso_after,
    retry_seconds,
    schema_tokens,
    texts_of,
)

_TEXT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}


def _tool(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, input_schema) of the tool the model will use, if the request offers any."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, Mapping) and t.get("name")]
    found = body.get("tool_choice")
    choice: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    if not tools or choice.get("type") == "none":
        return None
    tool = next((t for t in tools if t["name"] == choice.get("name")), tools[0])
    schema = tool.get("input_schema")
    return tool["name"], schema if isinstance(schema, dict) else _TEXT_SCHEMA


def _output_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON-schema output format: `output_format` (beta) or `output_config.format`."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def _marked_for_cache(system: Any) -> bool:
    """A system prompt given as blocks, one of them carrying `cache_control`."""
    return isinstance(system, list) and any(
        isinstance(b, Mapping) and isinstance(b.get("cache_control"), Mapping) for b in system
    )


class AnthropicWire:
    name = "anthropic"

    def api_key(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        return headers.get("x-api-key")

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> SimRequest:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise BadRequest("model: Field required")
        if not isinstance(body.get("max_tokens"), int):
            raise BadRequest("max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages: Field required")
        system = list(texts_of(body.get("system")))
        tokens = 3 + sum(count_tokens(t) for t in system)
        user: list[str] = []
        for msg in messages:
            if not isinstance(msg, Mapping):
                raise BadRequest("messages.0: Input should be a valid dictionary")
            texts = list(texts_of(msg.get("content")))
            tokens += 4 + sum(count_tokens(t) for t in texts)
            seen, image_tokens = look_at(msg.get("content"), self.name)
            tokens += image_tokens
            if msg.get("role") == "user":
                user.extend([*seen, *texts])
        req = SimRequest(
            model=model,
            user_text="\n".join(user),
            prompt_tokens=tokens,
            max_tokens=body["max_tokens"],
        )
        tool = _tool(body)
        if tool is not None:
            req.tool_name, req.schema = tool
            req.mode = "tool"
        elif (schema := _output_schema(body)) is not None:
            req.schema, req.mode = schema, "json"
        req.prompt_tokens += schema_tokens(req.schema)
        if _marked_for_cache(body.get("system")):  # tools, then system: the cached prefix
            req.cache_prefix = repr((body.get("tools"), body.get("system")))
            req.cache_prefix_tokens = (
                tokens
                - 3
                + schema_tokens(req.schema)
                - sum(
                    4 + sum(count_tokens(t) for t in texts_of(m.get("content"))) for m in messages
                )
            )
        return req

    def success(
        self, req: SimRequest, ans: Answer, usage: SimUsage, view: LimitView, rid: str
    ) -> Reply:
        text, cut = ans.text, req.truncated
        content: list[dict[str, Any]] = []
        if usage.reasoning_tokens and req.mode != "tool":
            content.append(
                {
                    "type": "thinking",
                    "thinking": "Let me work through this.",
                    "signature": "c2ltdWxhdGVk",
                }
            )
        if req.mode == "tool":
            value = ans.value if isinstance(ans.value, dict) and not cut else {}
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_{rid[4:]}",
                    "name": req.tool_name,
                    "input": value,
                }
            )
        else:
            content.append({"type": "text", "text": text})
        stop = "max_tokens" if cut else ("tool_use" if req.mode == "tool" else "end_turn")
        billed: dict[str, Any] = {
            "input_tokens": usage.input_tokens - usage.cached_tokens - usage.cache_write_tokens,
            "cache_creation_input_tokens": usage.cache_write_tokens,
            "cache_read_input_tokens": usage.cached_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage.cache_write_tokens,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": usage.output_tokens,
            "service_tier": "standard",
        }
        if usage.reasoning_tokens:
            billed["output_tokens_details"] = {"thinking_tokens": usage.reasoning_tokens}
        body = {
            "model": req.model,
            "id": f"msg_{rid[4:]}",
            "type": "message",
            "role": "assistant",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": billed,
        }
        return Reply(200, body, self._headers(view, rid))

    def _headers(self, view: LimitView, rid: str) -> dict[str, str]:
        tokens_reset = iso_after(0)
        return {
            "content-type": "application/json",
            "request-id": rid,
            "anthropic-ratelimit-requests-limit": str(view.limit),
            "anthropic-ratelimit-requests-remaining": str(view.remaining),
            "anthropic-ratelimit-requests-reset": iso_after(view.reset_s),
            "anthropic-ratelimit-tokens-limit": str(view.tokens_limit),
            "anthropic-ratelimit-tokens-remaining": str(view.tokens_remaining),
            "anthropic-ratelimit-tokens-reset": tokens_reset,
            "anthropic-ratelimit-input-tokens-limit": str(view.tokens_limit),
            "anthropic-ratelimit-input-tokens-remaining": str(view.tokens_remaining),
            "anthropic-ratelimit-input-tokens-reset": tokens_reset,
        }

    def error(
        self,
        kind: ErrorKind,
        view: LimitView | None,
        rid: str,
        model: str,
        detail: str = "",
        key: str = "",  # the key presented, for providers that echo it (masked) on auth errors
    ) -> Reply:
        status, err_type, message = _ERRORS[kind]
        headers = (
            self._headers(view, rid)
            if view
            else {"content-type": "application/json", "request-id": rid}
        )
        headers["x-should-retry"] = "true" if status in (429, 500, 529) else "false"
        if kind == "rate_limited" and view is not None:
            headers["retry-after"] = str(retry_seconds(view))
            message = message.format(limit=view.limit)
        body = {
            "type": "error",
            "error": {"type": err_type, "message": detail or message.format(model=model)},
            "request_id": rid,
        }
        return Reply(status, body, headers)


_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    "auth_missing": (401, "authentication_error", "x-api-key header is required"),
    "auth_invalid": (401, "authentication_error", "invalid x-api-key"),
    "not_found": (404, "not_found_error", "model: {model}"),
    "rate_limited": (
        429,
        "rate_limit_error",
        "This request would exceed your organization's rate limit of {limit} requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
    ),
    "server_error": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "invalid_request": (400, "invalid_request_error", "invalid request"),
}
