"""Simulator wire formats: reading OpenAI, Anthropic and Gemini requests, shaping their replies."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Protocol

from providers.sim.answers import Answer

Mode = Literal["text", "json", "tool"]
ErrorKind = Literal[
    "auth_missing",
    "auth_invalid",
    "not_found",
    "rate_limited",
    "server_error",
    "overloaded",
    "invalid_request",
]
JsonBody = dict[str, Any] | str


class BadRequest(Exception):
    """The request body does not say what the provider needs (answered as a 400)."""


@dataclass(slots=True)
class SimRequest:
    """What the simulator needs from one call, whatever the protocol."""

    model: str
    user_text: str
    prompt_tokens: int
    schema: dict[str, Any] | None = None
    mode: Mode = "text"
    tool_name: str = ""
    tool_forced_by_name: bool = False
    max_tokens: int | None = None
    truncated: bool = False  # the answer hit max_tokens
    cache_prefix: str = ""  # Anthropic: the text up to a cache_control breakpoint, if any
    cache_prefix_tokens: int = 0


@dataclass(slots=True)
class SimUsage:
    """Token counts, normalized: input includes cached, output includes reasoning."""

    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cache_write_tokens: int = 0


@dataclass(slots=True)
class LimitView:
    """The rate-limit state reported in headers (and in a 429's body)."""

    limit: int
    remaining: int
    reset_s: float
    tokens_limit: int = 10_000_000
    tokens_remaining: int = 10_000_000
    retry_after_s: float | None = None


@dataclass(slots=True)
class Reply:
    status: int
    body: JsonBody
    headers: dict[str, str] = field(default_factory=dict)


def count_tokens(text: str) -> int:
    """About four characters per token, like BPE tokenizers on English text."""
    return (len(text) + 3) // 4


def texts_of(content: Any) -> Iterable[str]:
    """Every text inside a message content: a string, a list of parts, or a dict of parts."""
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            yield from texts_of(part)
    elif isinstance(content, Mapping):
        for key in (
            "text",
            "thinking",
            "content",
            "parts",
            "function",
            "input",
            "arguments",
            "args",
        ):
            value = content.get(key)
            if isinstance(value, str):
                yield value
            elif isinstance(value, Mapping) and key in ("input", "args"):
                yield json.dumps(value)
            elif value is not None:
                yield from texts_of(value)


_SCHEMA_START = re.compile(r'\{\s*"(?:type|properties|\$schema|title)"')


def schema_in_text(text: str) -> dict[str, Any] | None:
    """A JSON Schema embedded in prompt text (json_object mode carries the schema in the prompt)."""
    decoder = json.JSONDecoder()
    for found in _SCHEMA_START.finditer(text):
        try:
            value, _ = decoder.raw_decode(text, found.start())
        except ValueError:
            continue
        if isinstance(value, dict) and "properties" in value:
            return value
    return None


def schema_tokens(schema: Mapping[str, Any] | None) -> int:
    return count_tokens(json.dumps(schema)) + 8 if schema else 0


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """The reply cut to `max_tokens`, and whether it was cut."""
    if max_tokens is None or count_tokens(text) <= max_tokens:
        return text, False
    return text[: max_tokens * 4], True


def iso_after(seconds: float) -> str:
    """RFC 3339 time `seconds` from now, whole seconds (Anthropic's reset headers)."""
    return _iso(int(time.time() + seconds + 0.999))


@lru_cache(maxsize=256)
def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def duration(seconds: float) -> str:
    """OpenAI's reset spelling: `6ms`, `1.5s`."""
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds:.3f}".rstrip("0") + "s"


def retry_seconds(view: LimitView) -> int:
    """Whole seconds for a Retry-After header: never 0, never early."""
    wait = view.retry_after_s or 0.0
    return max(1, int(wait) + (wait > int(wait)))


class Wire(Protocol):
    """One provider protocol: how its requests read and how its answers and errors look."""

    name: str

    def api_key(self, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None: ...

    def parse(self, body: Mapping[str, Any], path_model: str | None) -> SimRequest: ...

    def success(
        self, req: SimRequest, ans: Answer, usage: SimUsage, view: LimitView, rid: str
    ) -> Reply: ...

    def error(
        self,
        kind: ErrorKind,
        view: LimitView | None,
        rid: str,
        model: str,
        detail: str = "",
        key: str = "",  # the key presented, for providers that echo it (masked) on auth errors
    ) -> Reply: ...


def mask_key(key: str) -> str:
    """A key as OpenAI echoes it on a 401: its first 8 and last 4 characters."""
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "*" * len(key)


def now_s() -> int:
    return int(time.time())
