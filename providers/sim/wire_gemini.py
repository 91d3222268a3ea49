"""Simulator wire format for the Gemini API's generateContent."""

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
    schema_in_text,
    schema_tokens,
    texts_of,
)

_TEXT_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"text": {"type": "string"}}}
_JSON = "application/json; charset=UTF-8"
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_requests"


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    """Gemini accepts both spellings of every field."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _function(body: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(name, parameters) of the function the model will call, unless calling is off."""
    decls: list[Mapping[str, Any]] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, Mapping):
            found = _get(tool, "functionDeclarations", "function_declarations") or []
            decls.extend(d for d in found if isinstance(d, Mapping) and d.get("name"))
    config = _get(body, "toolConfig", "tool_config") or {}
    calling = _get(config, "functionCallingConfig", "function_calling_config") or {}
    if not decls or str(calling.get("mode", "AUTO")).upper() == "NONE":
        return None
    allowed = _get(calling, "allowedFunctionNames", "allowed_function_names") or []
    decl = next((d for d in decls if d["name"] in allowed), decls[0])
    params = decl.get("parameters") or _get(decl, "parametersJsonSchema", "parameters_json_schema")
    return decl["name"], params if isinstance(params, dict) else _TEXT_SCHEMA


class GeminiWire:
    name = "gemini"

    def api_key(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        return headers.get("x-goog-api-key") or query.get("key")

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> SimRequest:
        if not path_model:
            raise BadRequest("* GenerateContentRequest.model: unexpected model name format")
        contents = body.get("contents")
        contents = [contents] if isinstance(contents, Mapping) else contents
        if not isinstance(contents, list) or not contents:
            raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
        system = list(texts_of(_get(body, "systemInstruction", "system_instruction")))
        tokens = sum(count_tokens(t) for t in system)
        user: list[str] = []
        everything = list(system)
        for content in contents:
            if not isinstance(content, Mapping):
                raise BadRequest("Invalid JSON payload received. Unknown name in 'contents'.")
            texts = list(texts_of(content.get("parts")))
            tokens += 1 + sum(count_tokens(t) for t in texts)
            everything.extend(texts)
            seen, image_tokens = look_at(content.get("parts"), self.name)
            tokens += image_tokens
            if content.get("role", "user") == "user":
                user.extend([*seen, *texts])
        req = SimRequest(model=path_model, user_text="\n".join(user), prompt_tokens=max(1, tokens))
        gen = _get(body, "generationConfig", "generation_config") or {}
        limit = _get(gen, "maxOutputTokens", "max_output_tokens")
        req.max_tokens = limit if isinstance(limit, int) else None
        function = _function(body)
        if function is not None:
            req.tool_name, req.schema = function
            req.mode = "tool"
        elif _get(gen, "responseMimeType", "response_mime_type") == "application/json":
            schema = _get(gen, "responseJsonSchema", "response_json_schema") or _get(
                gen, "responseSchema", "response_schema"
            )
            if not isinstance(schema, dict):
                schema = schema_in_text("\n".join(everything)) or _TEXT_SCHEMA
            req.schema, req.mode = schema, "json"
        req.prompt_tokens += schema_tokens(req.schema)
        return req

    def success(
        self, req: SimRequest, ans: Answer, usage: SimUsage, view: LimitView, rid: str
    ) -> Reply:
        text, cut = ans.text, req.truncated
        if req.mode == "tool":
            args = ans.value if isinstance(ans.value, dict) and not cut else {}
            part: dict[str, Any] = {"functionCall": {"name": req.tool_name, "args": args}}
        else:
            part = {"text": text}
        visible = usage.output_tokens - usage.reasoning_tokens
        meta: dict[str, Any] = {
            "promptTokenCount": usage.input_tokens,
            "candidatesTokenCount": visible,
            "totalTokenCount": usage.input_tokens + usage.output_tokens,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": usage.input_tokens}],
        }
        # Like the real API, zero counts are left out rather than sent as 0.
        if usage.cached_tokens:
            meta["cachedContentTokenCount"] = usage.cached_tokens
            meta["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": usage.cached_tokens}]
        if usage.reasoning_tokens:
            meta["thoughtsTokenCount"] = usage.reasoning_tokens
        body = {
            "candidates": [
                {
                    "content": {"parts": [part], "role": "model"},
                    "finishReason": "MAX_TOKENS" if cut else "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": meta,
            "modelVersion": req.model,
            "responseId": rid[4:],
        }
        return Reply(200, body, {"content-type": _JSON, "x-gemini-service-tier": "standard"})

    def error(
        self,
        kind: ErrorKind,
        view: LimitView | None,
        rid: str,
        model: str,
        detail: str = "",
        key: str = "",  # the key presented, for providers that echo it (masked) on auth errors
    ) -> Reply:
        status, code_name, message = _ERRORS[kind]
        error: dict[str, Any] = {
            "code": status,
            "message": detail or message.format(model=model),
            "status": code_name,
        }
        if kind == "auth_invalid":
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        elif kind == "rate_limited" and view is not None:
            wait = view.retry_after_s or 1.0
            error["message"] = message.format(model=model) + f"\nPlease retry in {wait:.6f}s."
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": _QUOTA_METRIC,
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                            "quotaDimensions": {"model": model, "location": "global"},
                            "quotaValue": str(view.limit),
                        }
                    ],
                },
                # Whole seconds, rounded up, like the real API; no Retry-After header.
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{max(1, -int(-wait // 1))}s",
                },
            ]
        return Reply(status, {"error": error}, {"content-type": _JSON})


_ERRORS: dict[ErrorKind, tuple[int, str, str]] = {
    "auth_missing": (
        403,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). "
        "Please use API Key or other form of API consumer identity to call this API.",
    ),
    "auth_invalid": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."),
    "not_found": (
        404,
        "NOT_FOUND",
        "models/{model} is not found for API version v1beta, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods.",
    ),
    "rate_limited": (
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.\n"
        "* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_requests, "
        "model: {model}",
    ),
    "server_error": (
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
    "invalid_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
}
