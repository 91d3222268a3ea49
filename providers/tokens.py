"""Offline token estimates (o200k BPE) for sizing jobs and for replies without usage."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

ENCODING = "o200k_base"
EXACT_UP_TO_CHARS = 200_000  # beyond this, count evenly spaced samples and scale up
SAMPLES = 8
SAMPLE_CHARS = 8_000
REMEMBERED_UP_TO_CHARS = 4_000  # short texts (instructions above all) recur across jobs
_BINDINGS = "bpe_openai._bindings"


@cache
def _counter() -> Callable[[str], int]:
    """The Rust tokenizer's own `count`, loaded without bpe-openai's Python layer.

    Importing `bpe_openai` builds Python rank tables for every encoding it knows before the
    first count (measured: ~140 MB and ~0.7 s); the Rust tokenizer alone takes ~70 MB and
    ~70 ms, and counts without building a token list. Any surprise in the package's layout
    falls back to its public API, which gives the same counts.
    """
    try:
        return _rust_tokenizer().count  # type: ignore[no-any-return]
    except Exception:
        import bpe_openai

        encoding = bpe_openai.get_encoding(ENCODING)
        return lambda text: len(encoding.encode_ordinary(text))


def _rust_tokenizer() -> Any:
    bindings = sys.modules.get(_BINDINGS)
    if bindings is None:
        package = importlib.util.find_spec("bpe_openai")  # finds it without importing it
        assert package is not None and package.submodule_search_locations
        folder = Path(next(iter(package.submodule_search_locations)))
        path = next(
            folder / f"_bindings{suffix}"
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if (folder / f"_bindings{suffix}").exists()
        )
        spec = importlib.util.spec_from_file_location(_BINDINGS, path)
        assert spec is not None and spec.loader is not None
        bindings = importlib.util.module_from_spec(spec)
        sys.modules[_BINDINGS] = bindings  # a later `import bpe_openai` reuses it
        spec.loader.exec_module(bindings)
    return bindings.tokenizer_for_encoding(ENCODING)  # type: ignore[attr-defined]


def _count(text: str) -> int:
    count = _counter()
    try:
        return count(text)
    except UnicodeEncodeError:  # lone surrogates: count them as replacement characters
        return count(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"))


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
