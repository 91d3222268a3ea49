"""How the simulator "sees" an image: its size, its token count per protocol, and its text.

The simulator cannot read pixels. An image made for it carries the text a reader would see
in its own metadata (a PNG text chunk named GOLD_TEXT_KEY, or a JPEG comment); the simulator
reads that text as if it were in the prompt. Images without it are seen as blank.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from providers.image_tokens import image_tokens

__all__ = ["GOLD_TEXT_KEY", "SeenImage", "image_tokens", "images_in", "see"]

GOLD_TEXT_KEY = "frugal-text"


@dataclass(frozen=True)
class SeenImage:
    width: int
    height: int
    text: str


def see(data: bytes) -> SeenImage | None:
    """Size and embedded text of an image; None if the bytes are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
            info = picture.info
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    text = info.get(GOLD_TEXT_KEY) or info.get("comment") or ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return SeenImage(width, height, str(text))


def _decode(data: Any) -> bytes | None:
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def images_in(content: Any) -> Iterable[bytes]:
    """Image bytes inside message content, in any of the three wire shapes:
    OpenAI `image_url` data URLs, Anthropic `image` base64 blocks, Gemini `inlineData`."""
    if isinstance(content, list):
        for part in content:
            yield from images_in(part)
        return
    if not isinstance(content, Mapping):
        return
    url = (
        (content.get("image_url") or {}).get("url") if content.get("type") == "image_url" else None
    )
    source = content.get("source") if content.get("type") == "image" else None
    inline = content.get("inlineData") or content.get("inline_data")
    raw: Any = None
    if isinstance(url, str) and url.startswith("data:") and "," in url:
        raw = url.split(",", 1)[1]
    elif isinstance(source, Mapping) and source.get("type") == "base64":
        raw = source.get("data")
    elif isinstance(inline, Mapping):
        raw = inline.get("data")
    decoded = _decode(raw)
    if decoded is not None:
        yield decoded


def look_at(content: Any, protocol: str) -> tuple[list[str], int]:
    """What the simulated model reads in the images of one message, and their input tokens
    by the protocol's rule. Bytes that are not an image are billed as a small blank image."""
    texts: list[str] = []
    tokens = 0
    for data in images_in(content):
        seen = see(data) or SeenImage(1, 1, "")
        tokens += image_tokens(protocol, seen.width, seen.height)
        if seen.text:
            texts.append(seen.text)
    return texts, tokens
