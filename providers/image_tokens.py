"""Input tokens an image costs, by each provider's published rule (used to estimate before a
call; the bill itself always uses the provider's own counts from its usage figures)."""

from __future__ import annotations

import math

PROTOCOLS = ("openai", "anthropic", "gemini")


def image_tokens(protocol: str, width: int, height: int) -> int:
    """Input tokens one image costs, by each provider's published rule."""
    w, h = float(max(1, width)), float(max(1, height))
    if protocol == "anthropic":  # about (width x height) / 750, long edge at most 1568
        scale = min(1.0, 1568 / max(w, h))
        return max(1, math.ceil(w * scale * h * scale / 750))
    if protocol == "gemini":  # 258 per image up to 384 px, else per 768 px tile
        if w <= 384 and h <= 384:
            return 258
        return 258 * math.ceil(w / 768) * math.ceil(h / 768)
    # OpenAI high detail: fit in 2048 square, shortest side 768, 170 per 512 px tile + 85
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def worst_case_image_tokens(width: int, height: int) -> int:
    """The most any protocol charges for the image: what routing and budgets reserve."""
    return max(image_tokens(p, width, height) for p in PROTOCOLS)
