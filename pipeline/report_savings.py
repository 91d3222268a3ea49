"""The report's view of the two discounts: spend by mode (sync vs provider batch) with what
batching saved, and the cached share of input with what prompt caching saved."""

from __future__ import annotations

from pipeline.app import resolve_all_prices
from schemas.config import Config
from sinks.catalog import QueryResult, query
from sinks.errors import QueryError

PER_MTOK = 1e-6


def _discount_case(config: Config) -> str:
    """SQL: the provider's batch discount for the row's provider (0.5 when not configured)."""
    whens = " ".join(
        f"WHEN '{p.name.replace(chr(39), chr(39) * 2)}' THEN {p.batch_discount}"
        for p in config.providers
    )
    return f"CASE provider {whens} ELSE 0.5 END" if whens else "0.5"


def spend_by_mode(config: Config) -> QueryResult | None:
    """Calls and dollars per mode; `saved` is what the batched calls would have cost at the
    list price, minus what they cost."""
    sql = f"""
        SELECT coalesce(mode, 'sync') AS mode, count(*) AS calls,
               count(DISTINCT batch_id) AS batches,
               printf('$%.6f', sum(cost_usd)) AS usd,
               printf('$%.6f', sum(CASE WHEN mode = 'batch'
                   THEN cost_usd / {_discount_case(config)} - cost_usd ELSE 0 END)) AS saved
        FROM usage GROUP BY ALL ORDER BY mode"""
    try:
        return query(config.storage, sql)
    except QueryError:  # a lake written before modes existed
        return None


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
        out.append((model, int(total), int(cached), int(written), f"{share:.1%}", f"${saved:.6f}"))
    return QueryResult(["model", "input", "cached", "cache_writes", "cached_share", "saved"], out)
