"""`frugal report --html FILE`: one offline page whose every chart a real headless Chromium draws."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from support.frugal_testkit import default_models, run_frugal, sim_providers, write_config

from cli.config import load_config
from cli.report_data import report_data
from schemas.config import StorageConfig
from schemas.rows import DeadLetter, ResultRow, Row, UsageRow
from sinks.parquet import ParquetSink

CHARTS = ("spend-by-day", "cost-per-answer", "escalation", "saving", "latency", "dead-letters")
WINDOW = (1280, 1700)
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
    "--virtual-time-budget=15000",  # let every chart's promise settle before the DOM is read
    "--proxy-server=127.0.0.1:9",  # nothing listens there: any network fetch would fail loudly
    "--enable-logging=stderr",
    "--v=0",
]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KINDS = ("classify", "extract", "generate")
CHEAP = ("gpt-4.1-nano", "gemini-2.0-flash-lite")
PROVIDER = {"gpt-4.1-nano": "openai", "gemini-2.0-flash-lite": "gemini", "gpt-4o-mini": "openai"}


def workload() -> list[Row]:
    """Three days of jobs: cheap answers, escalations to gpt-4o-mini, and some dead letters."""
    rows: list[Row] = []
    for n in range(90):
        kind, cheap = KINDS[n % 3], CHEAP[n % 2]
        job, at = f"job-{n}", T0 + timedelta(days=n % 3, seconds=n)
        calls = (
            [(cheap, "invalid_output"), ("gpt-4o-mini", "ok")] if n % 4 == 0 else [(cheap, "ok")]
        )
        for attempt, (model, outcome) in enumerate(calls, 1):
            rows.append(usage(job, attempt, kind, model, outcome, at, 40.0 + n % 17 * 9))
        if n % 10 == 9:
            rows.append(dead(job, kind, ("server_error", "budget_exhausted")[n // 10 % 2], at))
        else:
            rows.append(result(job, kind, calls[-1][0], len(calls), at))
    return rows


def usage(
    job: str, attempt: int, kind: str, model: str, outcome: str, at: datetime, ms: float
) -> UsageRow:
    big = model == "gpt-4o-mini"
    return UsageRow(
        job_id=job, attempt=attempt, kind=kind, tenant="acme", provider=PROVIDER[model],
        model=model, input_tokens=300, output_tokens=40, cached_input_tokens=0,
        cache_write_tokens=0, reasoning_tokens=0, cost_usd=0.0004 if big else 0.00005,
        latency_ms=ms * (3 if big else 1), outcome=outcome, ts=at, worker="w1",
    )  # fmt: skip


def result(job: str, kind: str, model: str, attempts: int, at: datetime) -> ResultRow:
    return ResultRow(
        job_id=job, kind=kind, tenant="acme", doc_id=None, output="{}", provider=PROVIDER[model],
        model=model, attempts=attempts, input_tokens=300 * attempts, output_tokens=40 * attempts,
        cost_usd=0.00045 if attempts > 1 else 0.00005, latency_ms=80, created_at=at,
        completed_at=at,
    )  # fmt: skip


def dead(job: str, kind: str, error_type: str, at: datetime) -> DeadLetter:
    return DeadLetter(
        job_id=job, kind=kind, tenant="acme", error_type=error_type, error="HTTP 500",
        attempts=1, failed_at=at,
    )  # fmt: skip


def report_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path / "frugal.toml",
        prefix="report",
        data_dir=tmp_path / "data",
        providers=sim_providers(
            {p: "http://127.0.0.1:9" for p in ("openai", "anthropic", "gemini")}
        ),
        models=default_models(),
    )


@pytest.fixture
def report(tmp_path: Path) -> Path:
    config = report_config(tmp_path)
    data = tmp_path / "data"
    sink = ParquetSink(StorageConfig(data_dir=data), "w1")
    sink.add(workload())
    asyncio.run(sink.flush())
    out = tmp_path / "report.html"
    done = run_frugal(
        ["report", "--config", str(config), "--html", str(out)], bootstrap="127.0.0.1:9"
    )  # no broker needed
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}"
    return out


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (`make chromium` installs Debian's package as root)")
    profile = page.parent / f"chromium-profile-{len(args)}"
    return subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_report_loads_nothing_from_the_network(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert page.count("<script>") >= 3 and "Plotly.newPlot" in page  # the library is inlined
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)  # the page without the JS
    assert "<script" not in markup  # no script loaded from elsewhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", markup)
    assert not re.search(r"""@import|url\(""", markup)


def test_headless_chromium_draws_every_chart_without_errors(report: Path) -> None:
    dom = chromium(report, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    assert 'data-errors="' not in dom.stdout
    assert 'data-charts-drawn="6"' in dom.stdout
    boxes = chart_boxes(dom.stdout)
    assert set(boxes) == set(CHARTS)

    shot = report.with_suffix(".png")
    taken = chromium(report, f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == WINDOW
    for key, (left, top, width, height) in boxes.items():
        assert top + height <= WINDOW[1], f"{key} is below the screenshot"
        area = image.crop((left, top, left + width, top + height))
        assert colored_share(area) > 0.02, f"chart {key} looks blank"


def chart_boxes(dom: str) -> dict[str, tuple[int, int, int, int]]:
    """Each chart's box on the page, as the page recorded it once the chart was drawn."""
    boxes = {}
    for tag in re.findall(r"<div[^>]*data-chart=[^>]*>", dom):
        key = re.search(r'data-chart="([^"]+)"', tag)
        rect = re.search(r'data-rect="([\d,]+)"', tag)
        assert key and rect, tag
        left, top, width, height = (int(v) for v in rect.group(1).split(","))
        assert width > 200 and height > 200, tag
        boxes[key.group(1)] = (left, top, width, height)
    return boxes


def colored_share(area: Image.Image) -> float:
    """Share of pixels with a clear hue (bars), not white, grey or black (background, text)."""
    raw = area.tobytes()
    pixels = (raw[i : i + 3] for i in range(0, len(raw), 3))
    colored = sum(1 for p in pixels if max(p) - min(p) > 60)
    return colored / (area.width * area.height)


def test_the_saving_is_split_by_mode_once_usage_has_one(tmp_path: Path) -> None:
    """Every call sync: one bar pair (older lakes without a `mode` column: "all"); after a batch
    call, one pair per mode."""
    config = load_config(report_config(tmp_path))
    sink = ParquetSink(config.storage, "w1")
    sink.add(workload())
    asyncio.run(sink.flush())
    assert [s.x for s in report_data(config).saving] == [["sync"], ["sync"]]

    batch = usage("job-b", 1, "classify", "gpt-4.1-nano", "ok", T0, 40.0).as_record()
    table = pa.Table.from_pylist([batch | {"mode": "batch", "cost_usd": 0.000025}])
    part = config.storage.lake_dir / "usage" / "kind=classify" / "date=2026-03-02"
    pq.write_table(table.drop_columns(["kind"]), part / "batch-mode.parquet")
    saving = report_data(config).saving
    assert [s.x for s in saving] == [["batch", "sync"], ["batch", "sync"]]
    actual, alone = saving
    assert actual.y[0] == pytest.approx(0.000025)
    assert alone.y[0] > actual.y[0] * 10  # one answer at gpt-4o's list price
