"""Offline o200k token estimates: exact for ordinary inputs, sampled (and fast) for huge ones."""

from __future__ import annotations

import time

import pytest

from providers.tokens import EXACT_UP_TO_CHARS, _count, estimate_tokens


def test_known_counts() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("hello") == 1
    assert estimate_tokens("Hello world, this is a test.") == 8


def test_special_token_text_is_counted_as_text() -> None:
    assert estimate_tokens("<|endoftext|>") > 1


@pytest.mark.parametrize(
    "unit", ["The quick brown fox jumps. ", "日本語のテキストです。", "x = f(y)\n"]
)
def test_long_text_estimate_is_close_to_the_exact_count(unit: str) -> None:
    text = unit * (EXACT_UP_TO_CHARS * 3 // len(unit))
    exact = sum(_count(text[i : i + 100_000]) for i in range(0, len(text), 100_000))
    assert estimate_tokens(text) == pytest.approx(exact, rel=0.05)


def test_a_huge_document_is_estimated_quickly() -> None:
    text = "word " * 2_000_000  # 10 MB
    estimate_tokens("warm up")
    started = time.perf_counter()
    assert estimate_tokens(text) > 1_000_000
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    "text",
    [
        "Hello world, this is a test.",
        "日本語のテキストです。",
        "x = f(y)\n" * 40,
        "emoji 😀 ü",
        " \t\n",
    ],
)
def test_counts_equal_the_public_tokenizer(text: str) -> None:
    """The Rust counter is loaded around bpe-openai's Python layer; it must agree with it."""
    import bpe_openai

    assert estimate_tokens(text) == len(bpe_openai.get_encoding("o200k_base").encode_ordinary(text))
