"""Every recorded Gemini exchange, replayed over loopback HTTP through the generateContent
adapter.

| fixture | covers | asserted |
|---|---|---|
| error-400-api-key-invalid | bad key is a 400 with reason API_KEY_INVALID | auth |
| error-404-model-not-found | unknown model | not_found |
| error-429-resource-exhausted-generic | RESOURCE_EXHAUSTED without details | rate_limited, no wait |
| error-429-resource-exhausted-quota | QuotaFailure + RetryInfo "48s" in the body | rate_limited, wait 48 s |
| error-500-internal | INTERNAL | server_error |
| generate-explicit-cached-content | cachedContentTokenCount | cached 3512; thoughts in output |
| generate-function-call | functionCall part | output = its args |
| generate-implicit-cache-and-thoughts | implicit cache + thoughts | cached 3055; output 656 + 1549 |
| generate-response-schema | JSON text answer, thought signature | output object |
| generate-text | plain text + thoughtsTokenCount | output 8 + 23 |
| stream-sse | alt=sse, CRLF framing, usage per chunk | text and final usage |
"""

from __future__ import annotations

from functools import partial

import pytest
from support.provider_replay import (
    SECRET,
    Case,
    Prefix,
    ReplayServer,
    check_replay,
    fixture_names,
    obj,
)

from schemas.errors import AuthError, NotFound, RateLimited, ServerError

G = partial(Case, kind="gemini", model="gemini-2.5-flash")
CASES: dict[str, Case] = {
    "gemini/error-400-api-key-invalid.json": G(error=AuthError, message_has="API key not valid"),
    "gemini/error-404-model-not-found.json": G(error=NotFound, message_has="not found"),
    "gemini/error-429-resource-exhausted-generic.json": G(
        error=RateLimited, message_has="Resource exhausted"
    ),
    "gemini/error-429-resource-exhausted-quota.json": G(
        error=RateLimited, retry_after=48.0, message_has="Quota exceeded for metric"
    ),
    "gemini/error-500-internal.json": G(error=ServerError, message_has="internal error"),
    "gemini/generate-explicit-cached-content.json": G(
        output="Paris.", usage=(3520, 3512, 0, 44, 42), finish="STOP"
    ),
    "gemini/generate-function-call.json": G(
        schema=obj(passphrase="string"),
        schema_name="passphrase_test_tool",
        output={"passphrase": "portal"},
        usage=(62, 0, 0, 67, 48),
        finish="STOP",
    ),
    "gemini/generate-implicit-cache-and-thoughts.json": G(
        output=Prefix('"Impressive... most impressive." Indeed!'),
        usage=(3797, 3055, 0, 2205, 1549),
        finish="STOP",
    ),
    "gemini/generate-response-schema.json": G(
        schema=obj(title="string", author="string"),
        output={"title": "Apples are tasty", "author": "Hadley Wickham"},
        usage=(40, 0, 0, 274, 256),
        finish="STOP",
    ),
    "gemini/generate-text.json": G(output="2 + 2 = **4**", usage=(10, 0, 0, 31, 23), finish="STOP"),
    "gemini/stream-sse.json": G(output="1, 2, 3", usage=(8, 0, 0, 27, 20), finish="STOP"),
}


def test_every_gemini_fixture_has_a_case() -> None:
    assert fixture_names("gemini") == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_replay(replay_server: ReplayServer, name: str) -> None:
    await check_replay(replay_server, name, CASES[name])
    seen = replay_server.seen[0]
    assert seen.path_qs == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == SECRET
    assert SECRET not in seen.path_qs and "key=" not in seen.path_qs
