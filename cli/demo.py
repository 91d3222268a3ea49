"""`frugal demo`: broker, simulator (or real providers), bundled samples, worker, cost report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import tomli_w
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bus.broker import EmbeddedBroker
from bus.topics import ensure_topics
from cli.demo_deadline import print_saving, publish_deadline_run, with_batches
from cli.demo_samples import FILE_TASKS
from cli.publish import PublishSummary, collect, publish
from cli.report import render_report
from consumers.worker import StreamWorker
from pipeline.app import Pipeline
from providers.sim import SimThread
from schemas.config import JOB_KINDS, Config, SimBatchConfig, SimConfig, SimModelConfig

SAMPLES = Path(__file__).with_name("samples")
DEMO_DIR = Path("data/demo")
KEY_ENVS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")
PROTOCOL_PATHS = {"openai": "/v1", "azure-openai": "", "anthropic": "/v1", "gemini": "/v1beta"}

# Cheap models that are sometimes wrong, so the demo shows escalation at work, and one whose
# labels are often valid but wrong, so it shows audits catching it.
DEMO_SIM = SimConfig(
    latency_ms=20,
    batch=SimBatchConfig(completion_delay_s=0.5),
    models={
        "gemini-2.0-flash-lite": SimModelConfig(invalid_rate=0.12, wrong_rate=0.25),
        "gpt-4.1-nano": SimModelConfig(invalid_rate=0.08, cached_share=0.3),
        "gemini-2.5-flash": SimModelConfig(reasoning_tokens=24),
    },
)


def has_real_keys() -> bool:
    return any(os.environ.get(k) for k in KEY_ENVS)


def demo_config(base: Config, bootstrap: str, sim_url: str | None) -> Config:
    config = base.model_copy(deep=True)
    config.kafka.bootstrap = bootstrap
    config.kafka.topic_prefix = "demo"
    config.kafka.group_id = "frugal-demo"
    config.storage.data_dir = DEMO_DIR
    config.storage.flush_interval_s = 0.5
    config.kafka.commit_interval_s = 0.3
    config.kafka.session_timeout_s = 4  # one worker: no need to wait long for group peers
    config.worker.status_interval_s = 3600
    if sim_url is not None:
        for provider in config.providers:
            provider.base_url = sim_url + PROTOCOL_PATHS[provider.kind]
            provider.api_key = None
            provider.rpm = provider.tpm = None
            provider.max_concurrency = 64
        classify = config.route("classify")
        config.routes["classify"] = classify.model_copy(
            update={"audit_rate": 0.1, "min_accuracy": 0.9}
        )
    else:  # real providers: only those with a key
        keyed = {p.name for p in config.providers if p.api_key is not None}
        config.providers = [p for p in config.providers if p.name in keyed]
        config.models = [m for m in config.models if m.provider in keyed]
    return config


@contextlib.contextmanager
def provider_simulator(use_sim: bool) -> Iterator[str | None]:
    if not use_sim:
        yield None
        return
    with SimThread(DEMO_SIM) as sim:
        yield sim.base_url


def save_config(config: Config) -> Path:
    """The demo's config, minus secrets, so users can query its catalog afterwards."""
    data = config.model_dump(mode="json", exclude_none=True, exclude={"sim"})
    for provider in data.get("providers", []):
        provider.pop("api_key", None)
    data["kafka"]["bootstrap"] = "embedded"
    path = DEMO_DIR / "frugal.toml"
    path.write_text(tomli_w.dumps(data))
    return path


async def run_pipeline(config: Config, console: Console) -> None:
    bootstrap = config.kafka.bootstrap
    await ensure_topics(bootstrap, config.kafka)
    summary = PublishSummary()
    records = collect([str(p) for p in sorted(SAMPLES.glob("*.jsonl"))], None, summary, config)
    # Files too: an invoice PDF and an invoice photo, whose fields a vision model extracts.
    records += collect([str(SAMPLES / "files")], None, summary, config, tasks=FILE_TASKS)
    await publish(config, bootstrap, records, summary, show_progress=False)
    console.print(f"{summary.line()} from the bundled samples")
    pipeline = Pipeline(config, bootstrap, worker_id="demo")
    worker = StreamWorker(config, bootstrap, list(JOB_KINDS), pipeline)
    run = asyncio.create_task(worker.run(drain=True))
    columns = (TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("records", total=summary.total)
        while not run.done():
            progress.update(
                task, completed=pipeline.processed, total=max(summary.total, pipeline.processed)
            )
            await asyncio.wait({run}, timeout=0.2)
        progress.update(task, completed=pipeline.processed, total=pipeline.processed)
    await run
    if config.batch.enabled and any(p.batch for p in config.providers):
        await drain_deadline_run(config, console)


async def drain_deadline_run(config: Config, console: Console) -> None:
    """The same support tickets again, with a deadline: they go through batch APIs."""
    bootstrap = config.kafka.bootstrap
    count = await publish_deadline_run(config, bootstrap, SAMPLES / "tickets.jsonl")
    console.print(f"published {count} support tickets again, with deadline 48h")
    pipeline = Pipeline(config, bootstrap, worker_id="demo-deadline")
    await StreamWorker(config, bootstrap, list(JOB_KINDS), pipeline).run(drain=True)


def run_demo(base: Config) -> int:
    console = Console()
    use_sim = not has_real_keys()
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with EmbeddedBroker() as broker, provider_simulator(use_sim) as sim_url:
        where = "the provider simulator" if use_sim else "real providers (API keys found)"
        console.print(f"[bold]Frugal demo[/bold]: embedded broker on {broker.bootstrap}, {where}")
        config = demo_config(base, broker.bootstrap, sim_url)
        if use_sim:
            config = with_batches(config)
        if not config.models:
            console.print("no configured model has an API key set", style="red")
            return 1
        asyncio.run(run_pipeline(config, console))
    render_report(config, console)
    print_saving(config, console)
    path = save_config(config)
    console.print(
        f"\ndone in {time.monotonic() - started:.1f}s. Explore the results: "
        f'.venv/bin/frugal sql --config {path} "SELECT model, count(*) FROM results GROUP BY ALL"'
    )
    return 0
