"""Prometheus metrics of one worker: counters fed from the rows it writes, gauges read at scrape.

The pipeline calls `count_rows` with the very rows it hands to the sink, so the call, token and
cost counters add up to the `usage` table. Live state (calls in flight, breakers, caps, intake)
is read from the objects that own it when Prometheus scrapes, never copied on the hot path.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline.budgets import budget_id, window_key
from pipeline.limits import Limits
from schemas.config import BudgetConfig
from schemas.errors import FrugalError
from schemas.rows import DeadLetter, ResultRow, Row, UsageRow

log = logging.getLogger("frugal.metrics")

TOKEN_CLASSES: dict[str, str] = {  # label value -> UsageRow field
    "input": "input_tokens",
    "cached_input": "cached_input_tokens",
    "cache_write": "cache_write_tokens",
    "output": "output_tokens",
    "reasoning": "reasoning_tokens",
}
BREAKER_STATES = ("closed", "half-open", "open")


@dataclass
class LiveSources:
    """Where scrape-time gauges read from; the parts that own the state fill these in."""

    limits: Limits | None = None
    budgets: list[BudgetConfig] = field(default_factory=list)
    spent: Callable[[str], float] | None = None  # cap key -> USD settled and held
    records_in_flight: Callable[[], int] | None = None
    intake_paused: Callable[[], bool] | None = None


class _LiveCollector(Collector):
    def __init__(self, sources: LiveSources) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Any]:
        yield from self._provider_families()
        yield self._budget_family()
        s = self._sources
        records = GaugeMetricFamily(
            "frugal_records_in_flight", "Records being worked on by this worker"
        )
        records.add_metric([], s.records_in_flight() if s.records_in_flight else 0)
        yield records
        paused = GaugeMetricFamily(
            "frugal_intake_paused", "1 while this worker has stopped fetching (backpressure)"
        )
        paused.add_metric([], 1 if s.intake_paused and s.intake_paused() else 0)
        yield paused

    def _provider_families(self) -> Iterator[Any]:
        in_flight = GaugeMetricFamily(
            "frugal_in_flight", "Calls on the wire, per provider", labels=["provider"]
        )
        waiting = GaugeMetricFamily(
            "frugal_calls_waiting", "Calls queued behind a provider's limits", labels=["provider"]
        )
        limited = CounterMetricFamily(
            "frugal_rate_limited",
            "429s (and Gemini RESOURCE_EXHAUSTED rate limits) received, per provider",
            labels=["provider"],
        )
        breaker = GaugeMetricFamily(
            "frugal_breaker_state",
            "1 for the provider's current breaker state (disabled: bad key or no quota)",
            labels=["provider", "state"],
        )
        limits = self._sources.limits
        for name, limiter in (limits.providers if limits else {}).items():
            in_flight.add_metric([name], limiter.in_flight)
            waiting.add_metric([name], limiter.waiting)
            limited.add_metric([name], limiter.rate_limited)
            current = "disabled" if limiter.disabled_reason else limiter.breaker.state
            for state in (*BREAKER_STATES, "disabled"):
                breaker.add_metric([name, state], 1 if state == current else 0)
        yield from (in_flight, waiting, limited, breaker)

    def _budget_family(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "frugal_budget_used_ratio",
            "Share of each cost cap used in its current window (settled spend and holds)",
            labels=["cap"],
        )
        s = self._sources
        now = time.time()
        for budget in s.budgets:
            cap = budget_id(budget)
            spent = s.spent(f"{cap}@{window_key(budget.window, now)}") if s.spent else 0.0
            family.add_metric([cap], spent / budget.limit_usd)
        return family


class PipelineMetrics:
    """One worker's metrics, in a registry of its own (several pipelines may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.sources = LiveSources()
        r = self.registry
        self.records = Counter(
            "frugal_records", "Records settled, by kind and result", ["kind", "result"], registry=r
        )
        self.taken = Counter(
            "frugal_records_taken", "Records taken off Kafka, by kind", ["kind"], registry=r
        )
        self.calls = Counter(
            "frugal_calls",
            "Provider calls, by outcome as in usage",
            ["provider", "model", "outcome"],
            registry=r,
        )
        self.tokens = Counter(
            "frugal_tokens", "Tokens billed, by class", ["provider", "model", "class"], registry=r
        )
        self.cost = Counter(
            "frugal_cost_usd", "USD spent on provider calls", ["provider", "model"], registry=r
        )
        self.open_batches = Gauge(
            "frugal_open_batches",
            "Provider batches submitted and not yet ended",
            ["provider"],
            registry=r,
        )
        r.register(_LiveCollector(self.sources))
        self.spent_usd = 0.0  # the cost counter's sum, for progress lines
        # Labelled children, looked up once per label set: `labels()` costs more than `inc()`.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, counter: Counter, *labels: str) -> Any:
        key = (id(counter), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = counter.labels(*labels)
        return child

    def count_rows(self, rows: Iterable[Row]) -> None:
        """Count what is handed to the sink: usage rows as calls, results and letters as records."""
        for row in rows:
            if isinstance(row, UsageRow):
                self._count_call(row)
            elif isinstance(row, ResultRow):
                self._child(self.records, row.kind, "answered").inc()
            elif isinstance(row, DeadLetter) and row.status == "dead":
                self._child(self.records, row.kind, "dead").inc()

    def _count_call(self, row: UsageRow) -> None:
        provider, model = row.provider, row.model
        self._child(self.calls, provider, model, row.outcome).inc()
        for label, column in TOKEN_CLASSES.items():
            count = getattr(row, column)
            if count:
                self._child(self.tokens, provider, model, label).inc(count)
        self._child(self.cost, provider, model).inc(row.cost_usd)
        self.spent_usd += row.cost_usd

    def count_taken(self, kind: str) -> None:
        self._child(self.taken, kind).inc()

    def count_record(self, kind: str, result: str) -> None:
        """A record settled without a result row or dead letter (parked, document split)."""
        self._child(self.records, kind, result).inc()

    def set_open_batches(self, provider: str, count: int) -> None:
        self.open_batches.labels(provider).set(count)

    @property
    def open_batches_total(self) -> int:
        return int(sum(s.value for m in self.open_batches.collect() for s in m.samples))


@contextlib.contextmanager
def metrics_server(metrics: PipelineMetrics, host: str, port: int | None) -> Iterator[int | None]:
    """Serve /metrics on host:port while the block runs (port 0: any free one); yields the port."""
    if port is None:
        yield None
        return
    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as error:
        raise FrugalError(f"metrics: cannot listen on {host}:{port} ({error.strerror})") from None
    bound = int(server.server_port)
    log.info("metrics on http://%s:%d/metrics", host, bound)
    try:
        yield bound
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
