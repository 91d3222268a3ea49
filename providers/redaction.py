"""Keeping API keys out of error messages, logs and reprs."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"
MIN_SECRET_LEN = 4  # shorter "secrets" would mask ordinary words

# Providers echo (masked) keys back: "Incorrect API key provided: sk-...", "Your api key: ****".
_KEY_ECHO = re.compile(r"(?i)(\bapi[ _-]?key(?:\s+provided)?\s*:\s*)\S+?(?=[.,;]?(?:\s|$))")
_BEARER = re.compile(r"(?i)(\bbearer\s+)[\w.~+/=-]+")
_KEY_PARAM = re.compile(r"(?i)([?&](?:key|api[_-]?key)=)[^&\s\"']+")
_KEY_SHAPED = re.compile(r"\b(?:sk-(?:ant-|proj-|or-)?|AIza)[\w-]{12,}")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret, echoed key, bearer token and key query value masked."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LEN:
            text = text.replace(secret, MASK)
    text = _KEY_ECHO.sub(rf"\1{MASK}", text)
    text = _BEARER.sub(rf"\1{MASK}", text)
    text = _KEY_PARAM.sub(rf"\1{MASK}", text)
    return _KEY_SHAPED.sub(MASK, text)
