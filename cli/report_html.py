"""`frugal report --html FILE`: one self-contained page of charts (Plotly's JS inlined, no CDN)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from cli.report_data import ReportData, Series, report_data
from schemas.config import Config
from schemas.errors import FrugalError

CHART_HEIGHT = 360
PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#EECA3B", "#9D755D"]


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    note: str
    figure: go.Figure


def _bars(series: list[Series], stacked: bool, y_title: str, x_title: str = "") -> go.Figure:
    figure = go.Figure(
        [
            go.Bar(name=s.name, x=s.x, y=s.y, marker_color=PALETTE[i % len(PALETTE)])
            for i, s in enumerate(series)
        ]
    )
    figure.update_layout(
        barmode="stack" if stacked else "group",
        template="plotly_white",
        height=CHART_HEIGHT,
        margin={"l": 60, "r": 20, "t": 20, "b": 60},
        legend={"orientation": "h", "y": -0.2},
        yaxis_title=y_title,
        xaxis_title=x_title,
        xaxis_type="category",
        yaxis_rangemode="nonnegative",
    )
    if y_title.startswith("USD"):  # $0.00035, not 350µ
        figure.update_yaxes(tickprefix="$", exponentformat="none", tickformat=",.6~f")
    if not any(any(s.y) for s in series):
        figure.add_annotation(
            text="nothing recorded yet", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper"
        )
    return figure


def charts(data: ReportData) -> list[Chart]:
    saving_title = f"Saving against {data.frontier or 'the frontier model'} alone"
    by_mode = len(data.saving[0].x) > 1 if data.saving else False
    return [
        Chart(
            "spend-by-day",
            "Spend by day and model",
            "USD per UTC day, stacked by the model that was called.",
            _bars(data.spend_by_day, True, "USD"),
        ),
        Chart(
            "cost-per-answer",
            "Cost per answered job, by kind",
            "All attempts of a job (escalations included) over the jobs answered.",
            _bars(data.cost_per_answer, False, "USD per job"),
        ),
        Chart(
            "escalation",
            "Escalation cost, by kind",
            "Spend on answers that were used, and on calls whose answer was not (escalations).",
            _bars(data.escalation, True, "USD"),
        ),
        Chart(
            "saving",
            saving_title,
            "What Frugal spent, against the same answers' tokens at the frontier model's "
            f"list price{', by mode (sync / batch)' if by_mode else ''}.",
            _bars(data.saving, False, "USD"),
        ),
        Chart(
            "latency",
            "Latency percentiles by model",
            "Answered calls, milliseconds from send to answer.",
            _bars(data.latency, False, "ms"),
        ),
        Chart(
            "dead-letters",
            "Dead letters by error type",
            "Jobs currently dead, stacked by kind.",
            _bars(data.dead_letters, True, "jobs"),
        ),
    ]


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element."""
    return json.dumps(value).replace("</", "<\\/")


def _kpis(data: ReportData) -> str:
    t = data.totals
    saved = ""
    if data.saving:
        actual, alone = sum(data.saving[0].y), sum(data.saving[1].y)
        saved = f"{1 - actual / alone:.1%}" if alone else "-"
    items = [
        ("Total spend", f"${t.get('spend_usd', 0):.6f}"),
        ("Provider calls", f"{t.get('calls', 0):,.0f}"),
        ("Jobs answered", f"{t.get('answered', 0):,.0f}"),
        ("Dead letters", f"{t.get('dead', 0):,.0f}"),
        (f"Saved vs {data.frontier or 'frontier'} alone", saved or "-"),
    ]
    return "".join(
        f'<div class="kpi"><div class="v">{html.escape(v)}</div>'
        f'<div class="k">{html.escape(k)}</div></div>'
        for k, v in items
    )


def _chart_html(chart: Chart) -> str:
    return (
        f'<section class="card"><h2>{html.escape(chart.title)}</h2>'
        f'<p class="note">{html.escape(chart.note)}</p>'
        f'<div class="chart" id="{chart.key}" data-chart="{chart.key}"></div></section>'
    )


STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{padding:20px 28px;background:#1d2330;color:#fff}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#aab3c5;font-size:13px}
.kpis{display:flex;gap:12px;padding:16px 28px;flex-wrap:wrap}
.kpi{background:#fff;border-radius:8px;padding:12px 16px;min-width:150px;box-shadow:0 1px 2px #0002}
.kpi .v{font-size:20px;font-weight:600}.kpi .k{font-size:12px;color:#667}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:16px;padding:0 28px 28px}
.card{background:#fff;border-radius:8px;padding:12px 16px;box-shadow:0 1px 2px #0002}
.card h2{font-size:16px;margin:4px 0}.note{font-size:12px;color:#667;margin:0 0 4px}
"""

# Errors are kept on the page (data-errors) and each chart's box once drawn (data-rect), so a
# headless browser can tell that every chart rendered without a console.
BOOT = """
window.addEventListener('error', function (e) {
  var el = document.documentElement;
  el.dataset.errors = (el.dataset.errors || '') + String(e.message) + '\\n';
});
"""
DRAW = """
(function () {
  var figures = %s;
  var drawn = Object.keys(figures).map(function (key) {
    var f = figures[key];
    return Plotly.newPlot(key, f.data, f.layout, {displayModeBar: false, responsive: true});
  });
  Promise.all(drawn).then(function () {
    document.querySelectorAll('[data-chart]').forEach(function (el) {
      var r = el.getBoundingClientRect();
      el.dataset.rect = [r.left, r.top + window.scrollY, r.width, r.height].map(Math.round).join(',');
    });
    document.body.dataset.chartsDrawn = String(drawn.length);
  }, function (err) {
    document.documentElement.dataset.errors = (document.documentElement.dataset.errors || '') + err;
  });
})();
"""


def render_html(data: ReportData, generated_at: datetime | None = None) -> str:
    all_charts = charts(data)
    figures = {c.key: c.figure.to_plotly_json() for c in all_charts}
    stamp = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Frugal report</title>"
        f"<style>{STYLE}</style><script>{BOOT}</script>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>Frugal report</h1><p>generated {stamp}; "
        "cost, volume and quality of the jobs in the catalog</p></header>"
        f'<div class="kpis">{_kpis(data)}</div>'
        f"<main>{''.join(_chart_html(c) for c in all_charts)}</main>"
        f"<script>{DRAW % _script_json(_plain(figures))}</script></body></html>"
    )


def _plain(value: Any) -> Any:
    """Plotly's JSON form of a figure, through its own encoder (dates, numpy) to plain values."""
    return json.loads(pio.json.to_json_plotly(value))


def write_html_report(config: Config, path: Path) -> Path:
    page = render_html(report_data(config))
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise FrugalError(f"report --html: cannot write {path} ({error.strerror})") from None
    return path
