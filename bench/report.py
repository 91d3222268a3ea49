"""Printing the benchmark results as tables, with what each figure measures."""

from __future__ import annotations

import shutil
from typing import Any

from rich.console import Console
from rich.table import Table

# Issue 12's targets: one worker process, zero provider latency, 20,000 jobs.
TARGET_RATE = 2_000  # records/s for the whole `frugal worker --drain` command, start to exit
TARGET_LITELLM_RATIO = 10.0  # that rate against the LiteLLM Router script's, same run
TARGET_FIRST_ANSWER_S = 2.0  # command start -> first record answered
TARGET_CPU_MS = 0.4  # worker CPU per record in steady state

_WORKER_ROWS = (
    (
        "rate_end_to_end",
        "records/s end to end",
        "{:,.0f}",
        "first record answered -> drain complete (flushed, committed, process exited)",
    ),
    (
        "rate_steady",
        "records/s steady state",
        "{:,.0f}",
        "first -> last record answered (timestamps of the usage rows)",
    ),
    (
        "rate_wall",
        "records/s whole command",
        "{:,.0f}",
        "`frugal worker --drain` start to exit: imports, group join and shutdown included",
    ),
    (
        "cpu_ms_per_record",
        "CPU ms/record (steady)",
        "{:.3f}",
        "worker process user+sys inside the steady window, per record",
    ),
    (
        "cpu_ms_per_record_total",
        "CPU ms/record (whole process)",
        "{:.3f}",
        "all user+sys CPU of the worker process (start-up included) / records",
    ),
    ("peak_rss_mb", "peak RSS MB", "{:,.0f}", "worker process high-water mark (wait4 ru_maxrss)"),
    ("join_s", "start -> first answer s", "{:.2f}", "imports, topics, group join, first call"),
    (
        "sim_cpu_share",
        "simulator CPU share",
        "{:.0%}",
        "of one core, in the steady window: near 100% would make the simulator the limit",
    ),
)


def worker_table(results: dict[str, Any]) -> Table:
    settings = results["settings"]
    table = Table(
        title=f"One worker process, {settings['records']:,} records through the simulator at "
        f"zero latency (median of {settings['runs']} runs)",
        title_justify="left",
    )
    table.add_column("figure")
    table.add_column("median", justify="right")
    table.add_column("what it measures", style="dim")
    for key, label, fmt, meaning in _WORKER_ROWS:
        table.add_row(label, fmt.format(results["worker"][key]), meaning)
    return table


def baseline_table(results: dict[str, Any]) -> Table:
    worker = results["worker"]
    table = Table(
        title=f"Baselines on the same calls ({results['settings']['baseline_records']:,} records "
        "each, concurrency 64, validation + cost + Parquet, no Kafka)",
        title_justify="left",
    )
    for column in (
        "",
        "records/s whole command",
        "records/s end to end",
        "records/s steady",
        "CPU ms/record",
        "peak RSS MB",
        "Frugal worker is",
        "its whole command is (vs end to end / whole)",
    ):
        table.add_column(column, justify="right" if column else "left")
    table.add_row("frugal worker (Kafka in and out)", *_rates(worker), "", "")
    multi = results.get("worker_processes")
    if multi:
        processes = results["settings"]["processes"]
        table.add_row(f"frugal worker --processes {processes} (CPU: all, RSS: largest)",
                      *_rates(multi), "", "")  # fmt: skip
    names = {"glue": "httpx glue script", "litellm": "LiteLLM Router script"}
    for name, b in results["baselines"].items():
        table.add_row(
            names.get(name, name),
            f"{b.get('rate_wall', 0):,.0f}",
            f"{b['rate_end_to_end']:,.0f}",
            f"{b['rate_steady']:,.0f}",
            f"{b['cpu_ms_per_record']:.3f}",
            f"{b['peak_rss_mb']:,.0f}",
            f"{b['worker_speedup_end_to_end']:.1f}x faster",
            f"{b.get('worker_whole_vs_end_to_end', 0):.1f}x / {b.get('worker_whole_vs_whole', 0):.1f}x",
        )
    return table


def _rates(run: dict[str, Any]) -> tuple[str, ...]:
    return (
        f"{run['rate_wall']:,.0f}",
        f"{run['rate_end_to_end']:,.0f}",
        f"{run['rate_steady']:,.0f}",
        f"{run['cpu_ms_per_record']:.3f}",
        f"{run['peak_rss_mb']:,.0f}",
    )


def memory_table(memory: dict[str, Any]) -> Table:
    table = Table(title="Backlog memory (bench/backlog_memory.py)", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in memory.items():
        shown = (
            f"{value:,.1f}"
            if isinstance(value, float)
            else f"{value:,}"
            if isinstance(value, int)
            else str(value)
        )
        table.add_row(str(key), shown)
    return table


def print_report(results: dict[str, Any]) -> None:
    console = Console(width=max(120, shutil.get_terminal_size((140, 40)).columns))
    console.print(worker_table(results))
    if results["baselines"]:
        console.print(baseline_table(results))
    if results.get("memory"):
        console.print(memory_table(results["memory"]))
    for line in target_lines(results):
        console.print(line)


def target_lines(results: dict[str, Any]) -> list[str]:
    """Issue 12's targets, each met or missed, from the medians."""
    worker = results["worker"]
    lines = [
        f"Target {TARGET_RATE:,} records/s for the whole command (start to exit): "
        f"{verdict(worker['rate_wall'] >= TARGET_RATE)} it ({worker['rate_wall']:,.0f}).",
        f"Target first answer within {TARGET_FIRST_ANSWER_S:.0f} s of start: "
        f"{verdict(worker['join_s'] <= TARGET_FIRST_ANSWER_S)} it ({worker['join_s']:.2f} s).",
        f"Target at most {TARGET_CPU_MS} ms CPU per record (steady): "
        f"{verdict(worker['cpu_ms_per_record'] <= TARGET_CPU_MS)} it "
        f"({worker['cpu_ms_per_record']:.3f} ms).",
    ]
    for broker, found in (results.get("first_answer") or {}).items():
        median = found["median_s"]
        lines.append(
            f"Target first answer within {TARGET_FIRST_ANSWER_S:.0f} s on {broker} "
            f"({results['settings'].get('first_answer_records', 0):,}-record drains): "
            f"{verdict(median <= TARGET_FIRST_ANSWER_S)} it ({median:.2f} s median of "
            f"{', '.join(f'{t:.2f}' for t in found['runs_s'])})."
        )
    litellm = results["baselines"].get("litellm")
    if litellm:
        ratio, how = litellm_ratio(litellm, results["settings"], "worker")
        lines.append(
            f"Target {TARGET_LITELLM_RATIO:.0f}x the LiteLLM Router script: "
            f"{verdict(ratio >= TARGET_LITELLM_RATIO)} it ({ratio:.1f}x, {how}; whole command "
            f"against whole command {litellm['worker_whole_vs_whole']:.1f}x, against the "
            f"script's end-to-end rate {litellm['worker_whole_vs_end_to_end']:.1f}x)."
        )
    return lines + _processes_lines(results)


def verdict(ok: bool) -> str:
    return "meets" if ok else "misses"


def litellm_ratio(litellm: dict[str, Any], settings: dict[str, Any], who: str) -> tuple[float, str]:
    """The ratio the 10x target is judged on, and how it was taken.

    Issue 12 measures both commands start to exit: whole command against whole command, when
    the script ran as many records as the worker. On fewer records the script's start-up
    (imports, ~4 s) weighs more on its whole-command rate and flatters the worker, so the
    worker's whole command is held against the script's end-to-end rate instead."""
    same_records = settings.get("baseline_records", 0) >= settings.get("records", 0)
    if same_records:
        return litellm[f"{who}_whole_vs_whole"], "start to exit, both on the same records"
    return litellm[f"{who}_whole_vs_end_to_end"], (
        f"against the script's end-to-end rate: it ran {settings.get('baseline_records', 0):,} "
        f"records, the worker {settings.get('records', 0):,}"
    )


def _processes_lines(results: dict[str, Any]) -> list[str]:
    """The same targets for `worker --drain --processes N` (one command, N processes)."""
    multi = results.get("worker_processes")
    if not multi:
        return []
    processes = results["settings"]["processes"]
    rate = multi["rate_wall"]
    lines = [
        f"With --processes {processes}: {rate:,.0f} records/s whole command "
        f"({verdict(rate >= TARGET_RATE)} {TARGET_RATE:,}), first answer "
        f"{multi['join_s']:.2f} s."
    ]
    litellm = results["baselines"].get("litellm")
    if litellm and "processes_whole_vs_whole" in litellm:
        ratio, how = litellm_ratio(litellm, results["settings"], "processes")
        lines.append(
            f"With --processes {processes}: {ratio:.1f}x the LiteLLM Router script, {how} "
            f"({verdict(ratio >= TARGET_LITELLM_RATIO)} {TARGET_LITELLM_RATIO:.0f}x; "
            f"{litellm['processes_whole_vs_end_to_end']:.1f}x against its end-to-end rate)."
        )
    return lines
