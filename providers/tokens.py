"""Offline token estimates (o200k BPE) for sizing jobs and for replies without usage."""

from __future__ import annotations

from functools import cache, lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import bpe_openai

ENCODING = "o200k_base"
EXACT_UP_TO_CHARS = 200_000  # beyond this, count evenly spaced samples and scale up
SAMPLES = 8
SAMPLE_CHARS = 8_000
REMEMBERED_UP_TO_CHARS = 4_000  # short texts (instructions above all) recur across jobs


@cache
def _encoding() -> bpe_openai.Encoding:
    import bpe_openai  # 0.6 s to import: only when a count is needed, not for `frugal call`

    return bpe_openai.get_encoding(ENCODING)


def _count(text: str) -> int:
    return len(_encoding().encode_ordinary(text))


@lru_cache(maxsize=4096)
def _count_remembered(text: str) -> int:
    return _count(text)


def estimate_tokens(text: str) -> int:
    """Tokens in `text` under o200k: exact up to 200k characters, sampled above.

    Sampling (not len/4) keeps long CJK or code documents honest: their tokens per
    character differ from English by 3x or more.
    """
    if not text:
        return 0
    if len(text) <= REMEMBERED_UP_TO_CHARS:
        return _count_remembered(text)
    if len(text) <= EXACT_UP_TO_CHARS:
        return _count(text)
    stride = len(text) // SAMPLES
    sampled = [text[i * stride : i * stride + SAMPLE_CHARS] for i in range(SAMPLES)]
    tokens = sum(_count(s) for s in sampled)
    return max(1, round(tokens * len(text) / sum(len(s) for s in sampled)))
