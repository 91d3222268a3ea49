"""What routing learns from `usage`: how often each model's answers validate per kind, how long
they are, and how much of their input the provider serves from cache."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field

import duckdb

from schemas.config import StorageConfig
from sinks import lake

PRIOR_VALID, PRIOR_WEIGHT = 0.9, 4.0  # optimistic prior: a model is assumed mostly right
PROMPT_MODE_PRIOR = 0.75  # no structured-output feature: the schema is only asked for in words
MAX_SEEN = 2000  # beyond this many answers the counts are halved: recent behaviour weighs more
EXPECTED_OUTPUT = {"classify": 8, "extract": 120, "generate": 300}


@dataclass
class Tally:
    valid: float = 0.0
    answers: float = 0.0
    output_tokens: float = 0.0

    def add(self, valid: bool, output_tokens: int, weight: float = 1.0) -> None:
        self.valid += weight * valid
        self.answers += weight
        self.output_tokens += weight * output_tokens
        if self.answers > MAX_SEEN:
            self.valid, self.answers, self.output_tokens = (
                self.valid / 2,
                self.answers / 2,
                self.output_tokens / 2,
            )


@dataclass
class ValidityStats:
    """Per (model, kind): valid answers out of answers, and output length; per model: cache share."""

    tallies: dict[tuple[str, str], Tally] = field(default_factory=dict)
    cache: dict[str, list[int]] = field(default_factory=dict)  # model -> [cached, input] tokens
    cache_writes: dict[str, int] = field(default_factory=dict)  # model -> tokens written to cache

    def record(
        self, model: str, kind: str, valid: bool, output_tokens: int, input_tokens: int = 0,
        cached_input_tokens: int = 0, cache_write_tokens: int = 0,
    ) -> None:  # fmt: skip
        self.tallies.setdefault((model, kind), Tally()).add(valid, output_tokens)
        self.cache_writes[model] = self.cache_writes.get(model, 0) + cache_write_tokens
        c = self.cache.setdefault(model, [0, 0])
        c[0] += cached_input_tokens
        c[1] += input_tokens

    def seen(self, model: str, kind: str) -> int:
        tally = self.tallies.get((model, kind))
        return int(tally.answers) if tally else 0

    def valid_rate(self, model: str, kind: str, prior: float = PRIOR_VALID) -> float:
        tally = self.tallies.get((model, kind)) or Tally()
        return (tally.valid + prior * PRIOR_WEIGHT) / (tally.answers + PRIOR_WEIGHT)

    def expected_output(self, model: str, kind: str, allowance: int) -> int:
        tally = self.tallies.get((model, kind))
        guess = tally.output_tokens / tally.answers if tally and tally.answers else None
        if guess is None:
            guess = EXPECTED_OUTPUT.get(kind, 256)
        return int(min(allowance, max(1.0, guess)))

    def cached_share(self, model: str) -> float:
        cached, total = self.cache.get(model, (0, 0))
        return cached / total if total else 0.0

    def cache_write_share(self, model: str) -> float:
        """Share of input written to the provider's cache (billed 1.25x on Anthropic)."""
        total = self.cache.get(model, (0, 0))[1]
        return self.cache_writes.get(model, 0) / total if total else 0.0

    def seed(self, rows: list[tuple[str, str, int, int, int, int, int]]) -> None:
        """Rows of (model, kind, valid, invalid, output_tokens, input_tokens, cached_tokens)."""
        for model, kind, valid, invalid, output_tokens, input_tokens, cached in rows:
            tally = self.tallies.setdefault((model, kind), Tally())
            answers = valid + invalid
            tally.valid += valid
            tally.answers += answers
            tally.output_tokens += output_tokens
            if tally.answers > MAX_SEEN:  # keep the proportions, forget the volume
                scale = MAX_SEEN / tally.answers
                tally.valid, tally.answers = tally.valid * scale, tally.answers * scale
                tally.output_tokens *= scale
            c = self.cache.setdefault(model, [0, 0])
            c[0] += cached
            c[1] += input_tokens


_OUTCOMES_SQL = """
    SELECT model, kind,
           count(*) FILTER (WHERE outcome = 'ok'),
           count(*) FILTER (WHERE outcome = 'invalid_output'),
           coalesce(sum(output_tokens) FILTER (WHERE outcome IN ('ok', 'invalid_output')), 0),
           coalesce(sum(input_tokens) FILTER (WHERE outcome IN ('ok', 'invalid_output')), 0),
           coalesce(sum(cached_input_tokens)
                    FILTER (WHERE outcome IN ('ok', 'invalid_output')), 0)
    FROM read_parquet(?, hive_partitioning = 1, union_by_name = 1)
    WHERE model IS NOT NULL AND kind IS NOT NULL
    GROUP BY model, kind
"""


def outcomes_from_lake(storage: StorageConfig) -> list[tuple[str, str, int, int, int, int, int]]:
    """Answers per (model, kind) in the `usage` table so far: what a restarted worker remembers."""
    pattern = lake.table_glob(storage.lake_dir, "usage")
    if next(glob.iglob(pattern), None) is None:
        return []
    con = duckdb.connect()
    try:
        rows = con.execute(_OUTCOMES_SQL, [pattern]).fetchall()
    finally:
        con.close()
    return [(str(r[0]), str(r[1]), *(int(x) for x in r[2:])) for r in rows]  # type: ignore[misc]


def learned_stats(storage: StorageConfig) -> ValidityStats:
    stats = ValidityStats()
    stats.seed(outcomes_from_lake(storage))
    return stats
