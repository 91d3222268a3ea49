"""Rate-limit and retry-after headers, read into RateLimitState and a wait in seconds."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

from multidict import CIMultiDictProxy

from schemas.completion import RateLimitState

# Field of RateLimitState -> header spellings, most specific first:
# OpenAI/Groq/Together, Mistral's *-minute, Anthropic's anthropic-ratelimit-*, Together's bare form.
_COUNT_HEADERS: dict[str, tuple[str, ...]] = {
    "limit_requests": (
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-req-minute",
        "anthropic-ratelimit-requests-limit",
        "x-ratelimit-limit",
    ),
    "remaining_requests": (
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-req-minute",
        "anthropic-ratelimit-requests-remaining",
        "x-ratelimit-remaining",
    ),
    "limit_tokens": (
        "x-ratelimit-limit-tokens",
        "x-ratelimit-limit-tokens-minute",
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-input-tokens-limit",
    ),
    "remaining_tokens": (
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-remaining-tokens-minute",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-input-tokens-remaining",
    ),
}
_RESET_HEADERS: dict[str, tuple[str, ...]] = {
    "reset_requests_s": (
        "x-ratelimit-reset-requests",
        "anthropic-ratelimit-requests-reset",
        "x-ratelimit-reset",
    ),
    "reset_tokens_s": (
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-tokens-reset",
        "anthropic-ratelimit-input-tokens-reset",
    ),
}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


@lru_cache(maxsize=1024)  # providers repeat the same few spellings ("6ms", "1s", "59.2s")
def parse_duration(value: str) -> float | None:
    """Seconds in "6ms", "10.332999999s", "1m30s", "27s" or a bare "2"; None if unreadable."""
    value = value.strip().lower()
    if _NUMBER.fullmatch(value):
        return float(value)
    if not _DURATION.fullmatch(value):
        return None
    return sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(value))


def response_time(headers: Mapping[str, str]) -> datetime:
    """The provider's clock (the Date header), so absolute resets survive local clock skew."""
    raw = headers.get("date")
    if raw:
        try:
            return parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def _seconds_until(value: str, now: Callable[[], datetime]) -> float | None:
    """A reset given as a duration, or as an RFC 3339 / HTTP date, in seconds from `now()`."""
    duration = parse_duration(value)
    if duration is not None:
        return duration
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """The wait a `retry-after` (seconds or HTTP date) / `retry-after-ms` header asks for.

    When both are sent (Azure: `retry-after: 1`, `retry-after-ms: 0`) the longer one wins.
    """
    waits: list[float] = []
    raw_ms = headers.get("retry-after-ms")
    if raw_ms and _NUMBER.fullmatch(raw_ms.strip()):
        waits.append(float(raw_ms) / 1000)
    raw = headers.get("retry-after")
    if raw:
        wait = _seconds_until(raw, lambda: response_time(headers))
        if wait is not None:
            waits.append(wait)
    return max(waits) if waits else None


def _first_int(headers: Mapping[str, str], names: tuple[str, ...]) -> int | None:
    for name in names:
        raw = headers.get(name)
        if raw is not None and raw.strip().isdigit():  # skips recorder placeholders
            return int(raw)
    return None


def _first_reset(
    headers: Mapping[str, str], names: tuple[str, ...], now: Callable[[], datetime]
) -> float | None:
    for name in names:
        raw = headers.get(name)
        if raw is not None:
            seconds = _seconds_until(raw, now)
            if seconds is not None:
                return seconds
    return None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitState | None:
    """What the rate-limit headers say; None when the response carries none of them."""
    if not isinstance(headers, CIMultiDictProxy):  # aiohttp's: case-insensitive lookups in C
        # One pass into a plain dict: httpx.Headers scans every header on each lookup.
        headers = {name.lower(): value for name, value in headers.items()}
    clock: list[datetime] = []

    def now() -> datetime:  # the Date header is parsed only if an absolute reset needs it
        if not clock:
            clock.append(response_time(headers))
        return clock[0]

    fields: dict[str, float | int | None] = {
        name: _first_int(headers, spellings) for name, spellings in _COUNT_HEADERS.items()
    }
    for name, spellings in _RESET_HEADERS.items():
        fields[name] = _first_reset(headers, spellings, now)
    fields["retry_after_s"] = parse_retry_after(headers)
    if all(value is None for value in fields.values()):
        return None
    return RateLimitState.model_validate(fields)


def reset_wait(state: RateLimitState | None) -> float | None:
    """For a 429 without retry-after: when the exhausted budget resets (else the later reset)."""
    if state is None:
        return None
    if state.remaining_tokens == 0 and state.reset_tokens_s is not None:
        return state.reset_tokens_s
    if state.remaining_requests == 0 and state.reset_requests_s is not None:
        return state.reset_requests_s
    resets = [r for r in (state.reset_requests_s, state.reset_tokens_s) if r is not None]
    return max(resets) if resets else None
