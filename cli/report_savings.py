"""The report's view of the two discounts: spend by mode (sync vs provider batch) with what
batching saved, and the cached share of input with what prompt caching saved."""

from __future__ import annotations

from pipeline.app import resolve_all_prices
from providers.pricing import cost_usd
from schemas.completion import Usage
from schemas.config import Config
from sinks.catalog import QueryResult, query
from sinks.errors import QueryError

PER_MTOK = 1e-6


def spend_by_mode(config: Config) -> QueryResult | None:
    """Calls and dollars per mode; a batch's `saving` is what its calls' tokens would have
    cost at the list (sync) price, minus what they cost."""
    try:
        modes = query(
            config.storage,
            """SELECT coalesce(mode, 'sync'), count(*), count(DISTINCT batch_id), sum(cost_usd)
               FROM usage GROUP BY ALL ORDER BY 1""",
        ).rows
        batched = query(
            config.storage,
            """SELECT model, sum(input_tokens), sum(cached_input_tokens),
                      sum(cache_write_tokens), sum(output_tokens), sum(cost_usd)
               FROM usage WHERE mode = 'batch' GROUP BY ALL""",
        ).rows
    except QueryError:  # a lake written before modes existed
        return None
    prices = resolve_all_prices(config)
    saving = 0.0
    for model, inp, cached, written, out, paid in batched:
        if model in prices:
            usage = Usage(input_tokens=int(inp), cached_input_tokens=int(cached),
                          cache_write_tokens=int(written), output_tokens=int(out))  # fmt: skip
            saving += cost_usd(prices[model], usage) - float(paid)
    rows = [
        (mode, calls, batches, f"${usd:.6f}", f"${saving if mode == 'batch' else 0.0:.6f}")
        for mode, calls, batches, usd in modes
    ]
    return QueryResult(["mode", "calls", "batches", "usd", "saving"], rows)


def prompt_cache(config: Config) -> QueryResult:
    """Per model: the share of input read from cache, and what that saved net of cache writes."""
    prices = resolve_all_prices(config)
    rows = query(
        config.storage,
        """SELECT model, sum(input_tokens), sum(cached_input_tokens), sum(cache_write_tokens)
           FROM usage GROUP BY ALL ORDER BY model""",
    ).rows
    out = []
    for model, total, cached, written in rows:
        p = prices.get(model)
        saved = 0.0
        if p is not None:
            read_price = (
                p.cached_input_per_mtok if p.cached_input_per_mtok is not None else p.input_per_mtok
            )
            write_price = (
                p.cache_write_per_mtok if p.cache_write_per_mtok is not None else p.input_per_mtok
            )
            saved = (
                cached * (p.input_per_mtok - read_price)
                - written * (write_price - p.input_per_mtok)
            ) * PER_MTOK
        share = cached / total if total else 0.0
        out.append((model, _k(cached), _k(written), f"{share:.1%}", f"${saved:.6f}"))
    return QueryResult(["model", "cached", "writes", "share", "saving"], out)


def _k(tokens: int) -> str:
    """Token counts as the report writes them: 22.0k, 1.3M."""
    if tokens >= 1_000_000:
        return f"{tokens / 1e6:.1f}M"
    return f"{tokens / 1e3:.1f}k" if tokens >= 10_000 else str(int(tokens))
