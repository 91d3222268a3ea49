"""Provider failures: status + body + headers -> exactly one error class, message and wait."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from providers.profiles import dig
from providers.ratelimits import parse_duration, parse_retry_after, reset_wait
from providers.redaction import redact
from schemas.completion import RateLimitState, Usage
from schemas.errors import (
    AuthError,
    ContextLength,
    InvalidOutput,
    InvalidRequest,
    NotFound,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    Refusal,
    ServerError,
    Timeout,
)

MAX_MESSAGE_CHARS = 500

_CONTEXT = re.compile(
    r"maximum context length|context[ _-]length|context window|prompt is too long"
    r"|input is too long|exceeds the maximum number of tokens|input token count",
    re.IGNORECASE,
)
_QUOTA = re.compile(
    r"insufficient[ _]quota|credit balance is too low|insufficient credits"
    r"|billing account|billing (?:is )?(?:not enabled|disabled)|\blimit: 0\b",
    re.IGNORECASE,
)
_CONTENT_FILTER = re.compile(r"content[ _-]?(?:filter|management policy)|content_policy", re.I)
_RETRY_HINT = re.compile(r"(?:retry|try again) in (\d+(?:\.\d+)?)(ms|s)\b", re.IGNORECASE)

_AUTH_MARKS = {
    "authentication_error",
    "permission_error",
    "invalid_api_key",
    "api_key_invalid",
    "unauthenticated",
    "permission_denied",
}
_RATE_MARKS = {"rate_limit_error", "rate_limit_exceeded", "ratelimitreached", "resource_exhausted"}
_QUOTA_MARKS = {"insufficient_quota", "billing_disabled"}
_NOT_FOUND_MARKS = {"not_found_error", "model_not_found", "not_found", "deploymentnotfound"}
_OVERLOAD_MARKS = {"overloaded_error", "unavailable"}
_FILTER_MARKS = {"content_filter", "content_policy_violation"}
_CONTEXT_MARKS = {"context_length_exceeded", "string_above_max_length"}
_INVALID_OUTPUT_MARKS = {"tool_use_failed"}  # Groq: the model's tool call broke the schema


@dataclass(frozen=True)
class ErrorBody:
    """What an error body says, whatever its shape (OpenAI, Anthropic, Google, FastAPI, text)."""

    message: str = ""
    marks: frozenset[str] = frozenset()  # lower-cased error type / code / status / reasons
    retry_delay_s: float | None = None  # google.rpc.RetryInfo
    quota_values: tuple[str, ...] = ()  # google.rpc.QuotaFailure quotaValue


def read_error_body(body: str, *, upstream_path: str | None = None) -> ErrorBody:
    try:
        data = json.loads(body)
    except ValueError:
        return ErrorBody(message=body.strip())
    if not isinstance(data, dict):
        return ErrorBody(message=body.strip())
    error = data.get("error")
    if isinstance(error, str):  # some gateways send {"error": "text"}
        error = {"message": error}
    if not isinstance(error, dict):
        error = {"message": _detail_text(data.get("detail")) or data.get("message") or body.strip()}
    message = str(error.get("message") or "")
    upstream = dig(data, upstream_path) if upstream_path else None
    if upstream:
        message = f"{message}: {upstream}" if message else str(upstream)
    marks = {str(error.get(k)).lower() for k in ("type", "code", "status") if error.get(k)}
    details = [d for d in error.get("details") or () if isinstance(d, dict)]
    marks.update(str(d["reason"]).lower() for d in details if d.get("reason"))
    delays = [parse_duration(str(d["retryDelay"])) for d in details if d.get("retryDelay")]
    quota_values = tuple(
        str(v.get("quotaValue"))
        for d in details
        for v in d.get("violations") or ()
        if isinstance(v, dict) and v.get("quotaValue") is not None
    )
    delay = next((d for d in delays if d is not None), None)
    return ErrorBody(message, frozenset(marks), delay, quota_values)


def _detail_text(detail: Any) -> str:
    """FastAPI-style {"detail": "..."} or {"detail": [{"msg": ...}, ...]}."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return ""


def classify(status: int, body: ErrorBody) -> type[ProviderError]:
    """Exactly one class; the order matters (a 429 can be a quota, a 400 can be a bad key)."""
    marks, text = body.marks, body.message
    if status in (401, 403) or marks & _AUTH_MARKS or "api key not valid" in text.lower():
        return AuthError
    if status == 402 or marks & _QUOTA_MARKS or _QUOTA.search(text) or "0" in body.quota_values:
        return QuotaExhausted
    if status == 429 or marks & _RATE_MARKS:
        return RateLimited
    if 400 <= status < 500 and (marks & _FILTER_MARKS or _CONTENT_FILTER.search(text)):
        return Refusal
    if status == 413 or marks & _CONTEXT_MARKS or (400 <= status < 500 and _CONTEXT.search(text)):
        return ContextLength
    if marks & _INVALID_OUTPUT_MARKS:
        return InvalidOutput
    if status == 404 or marks & _NOT_FOUND_MARKS:
        return NotFound
    if status == 408:
        return Timeout
    if status in (503, 529) or marks & _OVERLOAD_MARKS:
        return Overloaded
    if 400 <= status < 500:
        return InvalidRequest
    return ServerError


def retry_wait(
    cls: type[ProviderError],
    headers: Mapping[str, str],
    body: ErrorBody,
    rate_limit: RateLimitState | None,
) -> float | None:
    """The wait the provider asked for: headers, then Google RetryInfo, then hints in the text;
    for rate limits without any of those, when the exhausted budget resets."""
    wait = parse_retry_after(headers)
    if wait is None:
        wait = body.retry_delay_s
    if wait is None and cls in (RateLimited, Overloaded):
        hint = _RETRY_HINT.search(body.message)
        if hint:
            wait = float(hint.group(1)) / (1000 if hint.group(2).lower() == "ms" else 1)
    if wait is None and cls is RateLimited:
        wait = reset_wait(rate_limit)
    return wait


def provider_error(
    status: int,
    body: str,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str,
    secrets: Iterable[str],
    rate_limit: RateLimitState | None,
    upstream_path: str | None = None,
    usage: Usage | None = None,
) -> ProviderError:
    """The classified, redacted error for one failed HTTP exchange."""
    info = read_error_body(body, upstream_path=upstream_path)
    cls = classify(status, info)
    text = " ".join(info.message.split()) or "(empty body)"
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + "..."
    message = redact(f"{provider} {model}: HTTP {status}: {text}", secrets)
    return cls(
        message,
        provider=provider,
        model=model,
        status=status,
        retry_after_s=retry_wait(cls, headers, info, rate_limit),
        rate_limit=rate_limit,
        usage=usage,
    )
