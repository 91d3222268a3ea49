"""`frugal report`: spend and volume by model, provider, kind and day, escalations, the saving."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console, Group
from rich.table import Table

from cli.report_savings import prompt_cache, spend_by_mode
from pipeline.app import resolve_all_prices
from providers.pricing import cost_usd, resolve_prices
from schemas.completion import Usage
from schemas.config import Config, ModelConfig
from sinks.catalog import QueryResult, query

_USD = "printf('$%.6f', {})"  # money as text: fixed decimals, never 1.2e-05
_K = (  # token counts: 22.0k, 1.3M
    "CASE WHEN {0} >= 1e6 THEN printf('%.1fM', {0} / 1e6)"
    " WHEN {0} >= 1e4 THEN printf('%.1fk', {0} / 1e3) ELSE CAST({0} AS VARCHAR) END"
)


def usd(expr: str) -> str:
    return _USD.format(expr)


def count(expr: str) -> str:
    return _K.format(expr)


# Each section fits 80 columns: few columns, short names, money as fixed-decimal text.
SECTIONS: dict[str, str] = {
    "Spend by model": f"""
        SELECT model, provider, count(*) AS calls,
               count(*) FILTER (WHERE outcome = 'ok') AS answers,
               count(*) FILTER (WHERE outcome <> 'ok') AS failed,
               {usd("sum(cost_usd)")} AS usd
        FROM usage GROUP BY ALL ORDER BY sum(cost_usd) DESC""",
    "Tokens by model": f"""
        SELECT model, {count("sum(input_tokens)")} AS input,
               {count("sum(cached_input_tokens)")} AS cached,
               {count("sum(output_tokens)")} AS output,
               {count("sum(reasoning_tokens)")} AS reasoning
        FROM usage GROUP BY ALL ORDER BY sum(cost_usd) DESC""",
    "Spend by provider": f"""
        SELECT provider, count(*) AS calls,
               count(*) FILTER (WHERE outcome = 'rate_limited') AS "429s",
               {usd("sum(cost_usd)")} AS usd
        FROM usage GROUP BY ALL ORDER BY sum(cost_usd) DESC""",
    "Spend by kind": f"""
        SELECT kind, count(DISTINCT job_id) AS jobs, count(*) AS calls,
               {usd("sum(cost_usd)")} AS usd,
               printf('$%.8f', sum(cost_usd) / nullif(count(DISTINCT job_id), 0)) AS per_job
        FROM usage GROUP BY ALL ORDER BY sum(cost_usd) DESC""",
    "Spend by day": f"""
        SELECT CAST(ts AS DATE) AS day, count(*) AS calls, {usd("sum(cost_usd)")} AS usd
        FROM usage GROUP BY ALL ORDER BY day""",
    "Escalations: calls whose answer was not used": f"""
        SELECT model, outcome, count(*) AS calls, {usd("sum(cost_usd)")} AS usd,
               printf('%.1f%%', 100 * sum(cost_usd)
                      / nullif((SELECT sum(cost_usd) FROM usage), 0)) AS of_spend
        FROM usage WHERE outcome <> 'ok' GROUP BY ALL ORDER BY sum(cost_usd) DESC""",
    "Escalation cost by kind": f"""
        SELECT kind, count(DISTINCT job_id) FILTER (WHERE outcome <> 'ok') AS jobs_escalated,
               {usd("coalesce(sum(cost_usd) FILTER (WHERE outcome <> 'ok'), 0)")} AS usd,
               printf('%.1f%%', 100 * coalesce(sum(cost_usd) FILTER (WHERE outcome <> 'ok'), 0)
                      / nullif(sum(cost_usd), 0)) AS of_kind_spend
        FROM usage GROUP BY ALL ORDER BY kind""",
    "Why models answered: route rank, and after what": """
        SELECT model, split_part(route_reason, ':', 1) AS chosen_as, count(*) AS answers,
               count(*) FILTER (WHERE route_reason LIKE '%; after %') AS escalated,
               count(*) FILTER (WHERE route_reason LIKE '%over budget%') AS over_budget
        FROM usage WHERE outcome = 'ok' GROUP BY ALL ORDER BY model, answers DESC""",
    "Audits: answers re-asked of the audit model": f"""
        SELECT audit_of AS model, kind, count(*) AS audits,
               count(*) FILTER (WHERE agreed) AS agreed,
               count(*) FILTER (WHERE NOT agreed) AS overruled,
               {usd("sum(cost_usd)")} AS usd
        FROM usage WHERE purpose = 'audit' GROUP BY ALL ORDER BY model, kind""",
    "Measured accuracy per kind (model_quality, latest audits)": """
        SELECT model, kind, audited, agreed, printf('%.1f%%', 100 * accuracy) AS accuracy,
               printf('%.1f-%.1f%%', 100 * lower, 100 * upper) AS "95% bounds"
        FROM model_quality ORDER BY kind, model""",
    "Jobs": """
        SELECT (SELECT count(*) FROM results) AS answered,
               (SELECT count(*) FROM dead_letters) AS dead_letters,
               (SELECT round(avg(attempts), 3) FROM results) AS avg_attempts,
               (SELECT count(*) FROM results WHERE attempts > 1) AS escalated""",
}
_LEFT = {"provider", "model", "kind", "outcome", "chosen_as"}


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
    escalation_usd: float = 0.0  # spent on calls whose answer was not used
    audit_usd: float = 0.0  # spent re-asking answers of the audit model

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
                  coalesce(sum(input_tokens) FILTER (WHERE outcome = 'ok' AND NOT audit), 0),
                  coalesce(sum(output_tokens) FILTER (WHERE outcome = 'ok' AND NOT audit), 0),
                  coalesce(sum(cost_usd) FILTER (WHERE outcome <> 'ok'), 0),
                  coalesce(sum(cost_usd) FILTER (WHERE audit), 0)
           FROM (SELECT *, coalesce(purpose = 'audit', false) AS audit FROM usage)""",
    ).rows[0]
    usage = Usage(input_tokens=int(row[1]), output_tokens=int(row[2]))
    prices = resolve_prices(model, config.provider(model.provider))
    return Saving(float(row[0]), cost_usd(prices, usage), model.name, float(row[3]), float(row[4]))


def _table(title: str, result: QueryResult) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold")
    for column in result.columns:
        table.add_column(column, justify="left" if column in _LEFT else "right")
    for row in result.rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def summary(s: Saving) -> str:
    escalations = s.escalation_usd / s.actual_usd if s.actual_usd else 0.0
    audits = s.audit_usd / s.actual_usd if s.actual_usd else 0.0
    return (
        f"[bold]Total spend ${s.actual_usd:.6f}[/bold], of which escalations "
        f"${s.escalation_usd:.6f} ({escalations:.1%}), audits ${s.audit_usd:.6f} "
        f"({audits:.1%}).\nThe same answers on {s.frontier} alone: "
        f"${s.frontier_usd:.6f} — saved {s.saved_share:.1%}"
    )


def render_report(config: Config, console: Console | None = None) -> None:
    console = console or Console()
    parts: list[Table | str] = [
        _table(title, query(config.storage, sql)) for title, sql in SECTIONS.items()
    ]
    by_mode = spend_by_mode(config)
    if by_mode is not None:
        parts.append(_table("Spend by mode (batch: provider batch APIs)", by_mode))
    parts.append(_table("Prompt cache: share of input read from cache", prompt_cache(config)))
    s = saving(config)
    if s is not None:
        parts.append(summary(s))
    console.print(Group(*parts))
