"""Simulator wire format for OpenAI Chat Completions (also Azure deployments and compatibles)."""

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
    duration,
    mask_key,
    now_s,
    retry_seconds,
    schema_in_text,
    schema_tokens,
    texts_of,
)

_TEXT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}
_JSON = "application/json; charset=utf-8"


def _forced_tool(body: Mapping[str, Any]) -> tuple[str, dict[str, Any], bool] | None:
    """(name, parameters, forced by name) of the function the model will call, if any."""
    functions = [t.get("function") for t in body.get("tools") or [] if isinstance(t, Mapping)]
    tools: list[Mapping[str, Any]] = [
        f for f in functions if isinstance(f, Mapping) and f.get("name")
    ]
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none":
        return None
    named = choice.get("function", {}).get("name") if isinstance(choice, Mapping) else None
    tool = next((t for t in tools if t["name"] == named), tools[0])
    params = tool.get("parameters")
    return tool["name"], params if isinstance(params, dict) else _TEXT_SCHEMA, named is not None


class OpenAIWire:
    name = "openai"

    def api_key(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return headers.get("api-key")

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> SimRequest:
        model = body.get("model") or path_model
        if not isinstance(model, str) or not model:
            raise BadRequest("you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("Missing required parameter: 'messages'.")
        user: list[str] = []
        everything: list[str] = []
        tokens = 3
        for msg in messages:
            if not isinstance(msg, Mapping):
                raise BadRequest("Invalid type for 'messages': expected an array of objects.")
            texts = list(texts_of(msg.get("content")))
            texts.extend(texts_of(msg.get("tool_calls") or []))
            tokens += 4 + sum(count_tokens(t) for t in texts)
            everything.extend(texts)
            seen, image_tokens = look_at(msg.get("content"), self.name)
            tokens += image_tokens
            if msg.get("role") == "user":
                user.extend([*seen, *texts])
        req = SimRequest(model=model, user_text="\n".join(user), prompt_tokens=tokens)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        req.max_tokens = limit if isinstance(limit, int) else None
        self._read_output_format(body, req, everything)
        req.prompt_tokens += schema_tokens(req.schema)
        return req

    def _read_output_format(
        self, body: Mapping[str, Any], req: SimRequest, texts: list[str]
    ) -> None:
        tool = _forced_tool(body)
        if tool is not None:
            req.tool_name, req.schema, req.tool_forced_by_name = tool
            req.mode = "tool"
            return
        fmt = body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, Mapping) else None
        if kind == "json_schema":
            spec = fmt.get("json_schema") if isinstance(fmt, Mapping) else None
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            if not isinstance(schema, dict):
                raise BadRequest("Missing required parameter: 'response_format.json_schema'.")
            req.schema, req.mode = schema, "json"
        elif kind == "json_object":
            req.schema, req.mode = schema_in_text("\n".join(texts)) or _TEXT_SCHEMA, "json"

    def success(
        self, req: SimRequest, ans: Answer, usage: SimUsage, view: LimitView, rid: str
    ) -> Reply:
        text, cut = ans.text, req.truncated
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text,
            "refusal": None,
            "annotations": [],
        }
        finish = "length" if cut else "stop"
        if req.mode == "tool":
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": f"call_{rid[4:]}",
                    "type": "function",
                    "function": {"name": req.tool_name, "arguments": text},
                }
            ]
            # Like the real API: a function forced by name ends with "stop", not "tool_calls".
            finish = "length" if cut else ("stop" if req.tool_forced_by_name else "tool_calls")
        body = {
            "id": f"chatcmpl-{rid[4:]}",
            "object": "chat.completion",
            "created": now_s(),
            "model": req.model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            ],
            "usage": {
                "prompt_tokens": usage.input_tokens,
                "completion_tokens": usage.output_tokens,
                "total_tokens": usage.input_tokens + usage.output_tokens,
                "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": usage.reasoning_tokens,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_sim",
        }
        return Reply(200, body, self._headers(view, rid, "application/json"))

    def _headers(self, view: LimitView, rid: str, content_type: str) -> dict[str, str]:
        return {
            "content-type": content_type,
            "x-request-id": rid,
            "openai-version": "2020-10-01",
            "openai-processing-ms": "1",
            "x-ratelimit-limit-requests": str(view.limit),
            "x-ratelimit-remaining-requests": str(view.remaining),
            "x-ratelimit-reset-requests": duration(view.reset_s),
            "x-ratelimit-limit-tokens": str(view.tokens_limit),
            "x-ratelimit-remaining-tokens": str(view.tokens_remaining),
            "x-ratelimit-reset-tokens": "0s",
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
        headers = (
            self._headers(view, rid, _JSON)
            if view
            else {"content-type": _JSON, "x-request-id": rid}
        )
        status, err_type, code = _ERRORS[kind]
        message = detail or _MESSAGES.get(kind, "").format(model=model, key=mask_key(key))
        if kind == "rate_limited" and view is not None:
            wait = retry_seconds(view)
            headers["retry-after"] = str(wait)
            headers["retry-after-ms"] = str(round((view.retry_after_s or wait) * 1000))
            message = (
                f"Rate limit reached for {model} in organization org-sim on requests per min "
                f"(RPM): Limit {view.limit}, Used {view.limit}, Requested 1. "
                f"Please try again in {wait}s. Visit https://platform.openai.com/account/"
                "rate-limits to learn more."
            )
        body = {"error": {"message": message, "type": err_type, "param": None, "code": code}}
        return Reply(status, body, headers)


_ERRORS: dict[ErrorKind, tuple[int, str, str | None]] = {
    "auth_missing": (401, "invalid_request_error", None),
    "auth_invalid": (401, "invalid_request_error", "invalid_api_key"),
    "not_found": (404, "invalid_request_error", "model_not_found"),
    "rate_limited": (429, "requests", "rate_limit_exceeded"),
    "server_error": (500, "server_error", None),
    "overloaded": (503, "server_error", None),
    "invalid_request": (400, "invalid_request_error", None),
}

_MESSAGES: dict[ErrorKind, str] = {
    "auth_missing": "You didn't provide an API key. You need to provide your API key in an "
    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
    "auth_invalid": "Incorrect API key provided: {key}. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    "not_found": "The model `{model}` does not exist or you do not have access to it.",
    "server_error": "The server had an error while processing your request. Sorry about that!",
    "overloaded": "The engine is currently overloaded, please try again later.",
}
