"""The figures behind the HTML report, read from the catalog as plain series (no charting here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cli.report import frontier_model
from providers.pricing import cost_usd, resolve_prices
from schemas.completion import Usage
from schemas.config import Config
from sinks.catalog import query

LATENCY_PERCENTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class Series:
    """One named line or bar group: y values over the x categories of its chart."""

    name: str
    x: list[str]
    y: list[float]


@dataclass
class ReportData:
    spend_by_day: list[Series] = field(default_factory=list)  # one per model
    cost_per_answer: list[Series] = field(default_factory=list)  # USD per answered job, by kind
    escalation: list[Series] = field(default_factory=list)  # answers used vs not, by kind
    saving: list[Series] = field(default_factory=list)  # actual vs frontier alone, by mode
    frontier: str | None = None
    latency: list[Series] = field(default_factory=list)  # one per percentile, x = model
    dead_letters: list[Series] = field(default_factory=list)  # one per kind, x = error type
    totals: dict[str, float] = field(default_factory=dict)


def _rows(config: Config, sql: str) -> list[tuple[Any, ...]]:
    return query(config.storage, sql).rows


def _pivot(rows: list[tuple[Any, ...]]) -> list[Series]:
    """(x, series, y) rows -> one Series per series name over every x, zeros where missing."""
    xs = sorted({str(r[0]) for r in rows})
    names = sorted({str(r[1]) for r in rows})
    cell = {(str(r[0]), str(r[1])): float(r[2] or 0) for r in rows}
    return [Series(n, xs, [cell.get((x, n), 0.0) for x in xs]) for n in names]


def usage_columns(config: Config) -> set[str]:
    return set(query(config.storage, "SELECT * FROM usage LIMIT 0").columns)


def spend_by_day(config: Config) -> list[Series]:
    return _pivot(
        _rows(
            config,
            "SELECT CAST(ts AS DATE), model, sum(cost_usd) FROM usage GROUP BY ALL ORDER BY 1, 2",
        )
    )


def cost_per_answer(config: Config) -> list[Series]:
    rows = _rows(config, "SELECT kind, avg(cost_usd) FROM results GROUP BY ALL ORDER BY kind")
    kinds, usd = [str(r[0]) for r in rows], [float(r[1] or 0) for r in rows]
    return [Series("USD per answered job", kinds, usd)]


def escalation(config: Config) -> list[Series]:
    return _pivot(
        _rows(
            config,
            """SELECT kind, CASE WHEN outcome = 'ok' THEN 'answers used'
                               ELSE 'escalations (answers not used)' END, sum(cost_usd)
               FROM usage GROUP BY ALL""",
        )
    )


def saving(config: Config, modes: bool) -> tuple[list[Series], str | None]:
    """Spend against the same answers' tokens priced on the frontier model alone (list price)."""
    model = frontier_model(config)
    if model is None:
        return [], None
    mode = "coalesce(mode, 'sync')" if modes else "'all'"
    rows = _rows(
        config,
        f"""SELECT {mode} AS m, coalesce(sum(cost_usd), 0),
                   coalesce(sum(input_tokens) FILTER (WHERE outcome = 'ok'), 0),
                   coalesce(sum(output_tokens) FILTER (WHERE outcome = 'ok'), 0)
            FROM usage GROUP BY ALL ORDER BY m""",
    )
    prices = resolve_prices(model, config.provider(model.provider))
    labels = [str(r[0]) for r in rows]
    actual = [float(r[1]) for r in rows]
    alone = [cost_usd(prices, Usage(input_tokens=int(r[2]), output_tokens=int(r[3]))) for r in rows]
    series = [
        Series("Frugal (actual)", labels, actual),
        Series(f"{model.name} alone", labels, alone),
    ]
    return series, model.name


def latency(config: Config) -> list[Series]:
    columns = ", ".join(f"quantile_cont(latency_ms, {p})" for p in LATENCY_PERCENTILES)
    rows = _rows(
        config,
        f"SELECT model, {columns} FROM usage WHERE outcome = 'ok' GROUP BY ALL ORDER BY model",
    )
    models = [str(r[0]) for r in rows]
    return [
        Series(f"p{round(p * 100)}", models, [float(r[i + 1] or 0) for r in rows])
        for i, p in enumerate(LATENCY_PERCENTILES)
    ]


def dead_letters(config: Config) -> list[Series]:
    return _pivot(_rows(config, "SELECT error_type, kind, count(*) FROM dead_letters GROUP BY ALL"))


def totals(config: Config) -> dict[str, float]:
    row = _rows(
        config,
        """SELECT (SELECT coalesce(sum(cost_usd), 0) FROM usage),
                  (SELECT count(*) FROM usage),
                  (SELECT count(*) FROM results),
                  (SELECT count(*) FROM dead_letters)""",
    )[0]
    keys = ("spend_usd", "calls", "answered", "dead")
    return {k: float(v or 0) for k, v in zip(keys, row, strict=True)}


def report_data(config: Config) -> ReportData:
    data = ReportData(
        spend_by_day=spend_by_day(config),
        cost_per_answer=cost_per_answer(config),
        escalation=escalation(config),
        latency=latency(config),
        dead_letters=dead_letters(config),
        totals=totals(config),
    )
    data.saving, data.frontier = saving(config, modes="mode" in usage_columns(config))
    return data
