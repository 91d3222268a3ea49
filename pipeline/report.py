"""`frugal report`: spend and volume by model, provider, kind and day, and the saving."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, Group
from rich.table import Table

from pipeline.app import resolve_all_prices
from providers.pricing import cost_usd, resolve_prices
from schemas.completion import Usage
from schemas.config import Config, ModelConfig
from sinks.catalog import QueryResult, query

SECTIONS: dict[str, str] = {
    "Spend by model": """
        SELECT provider, model, count(*) AS calls,
               count(*) FILTER (WHERE outcome = 'ok') AS answers,
               count(*) FILTER (WHERE outcome <> 'ok') AS failed_calls,
               sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_tokens,
               sum(output_tokens) AS output_tokens, sum(reasoning_tokens) AS reasoning_tokens,
               round(sum(cost_usd), 6) AS cost_usd
        FROM usage GROUP BY ALL ORDER BY cost_usd DESC""",
    "Spend by provider": """
        SELECT provider, count(*) AS calls, round(sum(cost_usd), 6) AS cost_usd
        FROM usage GROUP BY ALL ORDER BY cost_usd DESC""",
    "Spend by kind": """
        SELECT u.kind, count(DISTINCT u.job_id) AS jobs, count(*) AS calls,
               round(sum(u.cost_usd), 6) AS cost_usd,
               round(sum(u.cost_usd) / nullif(count(DISTINCT u.job_id), 0), 8) AS usd_per_job
        FROM usage u GROUP BY ALL ORDER BY cost_usd DESC""",
    "Spend by day": """
        SELECT CAST(ts AS DATE) AS day, count(*) AS calls, round(sum(cost_usd), 6) AS cost_usd
        FROM usage GROUP BY ALL ORDER BY day""",
    "Escalations (calls whose answer was not used)": """
        SELECT model, outcome, count(*) AS calls, round(sum(cost_usd), 6) AS cost_usd
        FROM usage WHERE outcome <> 'ok' GROUP BY ALL ORDER BY cost_usd DESC""",
    "Why models were chosen (answered jobs by route rank)": """
        SELECT model, split_part(route_reason, ':', 1) AS chosen_as, count(*) AS answers
        FROM usage WHERE outcome = 'ok' GROUP BY ALL ORDER BY model, answers DESC""",
    "Jobs": """
        SELECT (SELECT count(*) FROM results) AS answered,
               (SELECT count(*) FROM dead_letters) AS dead_letters,
               (SELECT round(avg(attempts), 3) FROM results) AS avg_attempts""",
}


def frontier_model(config: Config) -> ModelConfig | None:
    if config.report.frontier_model:
        return config.model(config.report.frontier_model)
    if not config.models:
        return None
    prices = resolve_all_prices(config)

    def priciness(m: ModelConfig) -> tuple[int, float]:
        return m.tier, cost_usd(prices[m.name], Usage(input_tokens=1000, output_tokens=1000))

    return max(config.models, key=priciness)


@dataclass(frozen=True)
class Saving:
    actual_usd: float
    frontier_usd: float
    frontier: str

    @property
    def saved_share(self) -> float:
        return 1 - self.actual_usd / self.frontier_usd if self.frontier_usd else 0.0


def saving(config: Config) -> Saving | None:
    """What the answered jobs cost, against their answers' tokens priced on the frontier model."""
    model = frontier_model(config)
    if model is None:
        return None
    row = query(
        config.storage,
        """SELECT coalesce(sum(cost_usd), 0),
                  coalesce(sum(input_tokens) FILTER (WHERE outcome = 'ok'), 0),
                  coalesce(sum(output_tokens) FILTER (WHERE outcome = 'ok'), 0)
           FROM usage""",
    ).rows[0]
    usage = Usage(input_tokens=int(row[1]), output_tokens=int(row[2]))
    prices = resolve_prices(model, config.provider(model.provider))
    return Saving(float(row[0]), cost_usd(prices, usage), model.name)


def _table(title: str, result: QueryResult) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in result.columns:
        table.add_column(
            column,
            justify="right"
            if column not in ("provider", "model", "kind", "outcome", "chosen_as")
            else "left",
        )
    for row in result.rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def render_report(config: Config, console: Console | None = None) -> None:
    console = console or Console()
    parts: list[Table | str] = [
        _table(title, query(config.storage, sql)) for title, sql in SECTIONS.items()
    ]
    s = saving(config)
    if s is not None:
        parts.append(
            f"[bold]Total spend ${s.actual_usd:.6f}[/bold]; the same answers on {s.frontier} alone: "
            f"${s.frontier_usd:.6f} — saved {s.saved_share:.1%}"
        )
    console.print(Group(*parts))
