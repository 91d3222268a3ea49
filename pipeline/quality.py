"""Measured accuracy per (model, kind): agreement with the route's audit model over the latest
audits, with Wilson bounds; seeded at start from the audit calls in the lake's `usage` table."""

from __future__ import annotations

import hashlib
import math
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from providers.pricing import ModelPrices, cost_usd
from schemas.completion import Usage
from schemas.config import Config, ModelConfig, StorageConfig
from sinks.catalog import query
from sinks.errors import QueryError
from sinks.model_quality import WINDOW, Z, recent_verdicts_sql

PRIOR_ACCURACY, PRIOR_WEIGHT = 0.9, 2.0  # an unaudited model is assumed mostly right


def sample_draw(job_id: str, salt: str) -> float:
    """A number in [0, 1) fixed by the job and salt: a replayed job is sampled alike."""
    digest = hashlib.blake2b(f"{job_id}\x00{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def wilson(agreed: int, audited: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of agreed/audited (the same formula as the `model_quality` view)."""
    if audited == 0:
        return 0.0, 1.0
    p, n = agreed / audited, audited
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


@dataclass(frozen=True)
class Accuracy:
    audited: int
    agreed: int

    @property
    def accuracy(self) -> float:
        return self.agreed / self.audited if self.audited else 0.0

    @property
    def bounds(self) -> tuple[float, float]:
        return wilson(self.agreed, self.audited)

    def describe(self) -> str:
        lower, upper = self.bounds
        return f"{self.accuracy:.0%} right [{lower:.0%}-{upper:.0%}] in {self.audited} audits"


class Window:
    """The latest WINDOW verdicts and how many of them agreed (kept, not summed per read)."""

    def __init__(self) -> None:
        self.verdicts: deque[bool] = deque(maxlen=WINDOW)
        self.agreed = 0

    def add(self, agreed: bool) -> None:
        if len(self.verdicts) == WINDOW:
            self.agreed -= self.verdicts[0]
        self.verdicts.append(agreed)
        self.agreed += agreed


@dataclass
class QualityStats:
    """The latest WINDOW audit verdicts per (model, kind), and audits still on the wire."""

    windows: dict[tuple[str, str], Window] = field(default_factory=dict)
    pending: Counter[tuple[str, str]] = field(default_factory=Counter)
    answering: Counter[tuple[str, str]] = field(default_factory=Counter)  # probes on the wire

    def record(self, model: str, kind: str, agreed: bool) -> None:
        window = self.windows.get((model, kind))
        if window is None:
            window = self.windows[(model, kind)] = Window()
        window.add(agreed)

    def accuracy(self, model: str, kind: str) -> Accuracy:
        window = self.windows.get((model, kind))
        return Accuracy(len(window.verdicts), window.agreed) if window else Accuracy(0, 0)

    def expected(self, model: str, kind: str) -> float:
        """Posterior mean under an optimistic prior: what the routing order uses."""
        a = self.accuracy(model, kind)
        return (a.agreed + PRIOR_ACCURACY * PRIOR_WEIGHT) / (a.audited + PRIOR_WEIGHT)

    def known(self, model: str, kind: str) -> int:
        """Audits done or on the wire: how far the model is from being proven for the kind."""
        return self.accuracy(model, kind).audited + self.pending[(model, kind)]

    def auditing(self, model: str, kind: str) -> AbstractContextManager[None]:
        """Counts an audit of the model's answer while it is on the wire."""
        return _counted(self.pending, (model, kind))

    def unjudged(self, model: str, kind: str) -> int:
        """Answers of the model for the kind that are on the wire or being audited."""
        return self.answering[(model, kind)] + self.pending[(model, kind)]

    def probing(self, model: str, kind: str) -> AbstractContextManager[None]:
        """Counts an answer of a model not proven for the kind while it is on the wire."""
        return _counted(self.answering, (model, kind))

    def seed(self, rows: list[tuple[str, str, bool]]) -> None:
        """(model, kind, agreed) rows, oldest first."""
        for model, kind, agreed in rows:
            self.record(model, kind, agreed)


@contextmanager
def _counted(counter: Counter[tuple[str, str]], key: tuple[str, str]) -> Iterator[None]:
    counter[key] += 1
    try:
        yield
    finally:
        counter[key] -= 1


def verdicts_from_lake(storage: StorageConfig) -> list[tuple[str, str, bool]]:
    """The latest audit verdicts in `usage`: what a restarted or new worker starts with.

    Read through the catalog, so verdicts compaction folded into the lake count too.
    """
    try:
        rows = query(storage, recent_verdicts_sql("usage")).rows
    except QueryError:  # a lake written before audits existed has no such columns
        return []
    return [(str(m), str(k), bool(a)) for m, k, a in rows]


def trusted_model(
    config: Config, prices: Mapping[str, ModelPrices], kind: str
) -> ModelConfig | None:
    """The route's audit model: `audit_model`, else the top tier's priciest model."""
    name = config.route(kind).audit_model
    if name is not None:
        return config.model(name)
    if not config.models:
        return None

    def priciness(m: ModelConfig) -> tuple[int, float]:
        return m.tier, cost_usd(prices[m.name], Usage(input_tokens=1000, output_tokens=1000))

    return max(config.models, key=priciness)
