"""The `frugal` command line: one subcommand per user task, one-line errors, no tracebacks."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cli.config import load_config
from schemas.config import JOB_KINDS, Config
from schemas.errors import FrugalError

Handler = Callable[[argparse.Namespace, Config], int]


def _setup_logging(verbose: bool, tag: str = "") -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s",
        stream=sys.stderr,
        force=bool(tag),
    )
    for noisy in ("faust", "mode", "aiokafka", "kafka", "httpx", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not verbose else logging.INFO)


def cmd_broker(args: argparse.Namespace, config: Config) -> int:
    from bus.broker import run_broker_foreground

    print(
        f"embedded broker on 127.0.0.1:{args.port} (memory only; Ctrl-C stops it)", file=sys.stderr
    )
    return run_broker_foreground(args.port)


def _kinds(raw: str | None) -> list[str]:
    kinds = [k.strip() for k in (raw or ",".join(JOB_KINDS)).split(",") if k.strip()]
    unknown = [k for k in kinds if k not in JOB_KINDS]
    if unknown:
        raise FrugalError(
            f"--kinds: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(JOB_KINDS)}"
        )
    return kinds


def cmd_worker(args: argparse.Namespace, config: Config) -> int:
    # numpy (imported by Arrow) would start an OpenBLAS thread that spins after use; the worker
    # does no linear algebra (measured: 0.5% of a drain's CPU)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.metrics_port is not None:
        if not 0 <= args.metrics_port <= 65535:
            raise FrugalError(f"--metrics-port: {args.metrics_port} is not a TCP port (0-65535)")
        config.worker.metrics_port = args.metrics_port
    if args.metrics_host:
        config.worker.metrics_host = args.metrics_host
    kinds = _kinds(args.kinds)
    from cli.worker_processes import child_config, process_count, run_processes

    count = process_count(args.processes or config.worker.processes)
    if count == 1:
        return _worker_process(config, kinds, args.drain)
    from bus.broker import running_broker

    with running_broker(config.kafka.bootstrap) as bootstrap:  # one embedded broker for all
        kafka = config.kafka.model_copy(update={"bootstrap": bootstrap})
        shared = config.model_copy(update={"kafka": kafka})
        return run_processes(
            count,
            lambda i: _worker_process(child_config(shared, i), kinds, args.drain, index=i),
        )


def _worker_process(config: Config, kinds: list[str], drain: bool, index: int = 0) -> int:
    """One worker process; `index` > 0 for the second and later of `--processes`: their log
    lines say which they are, and only the first draws the drain's progress."""
    from cli.runtime import run_event_loop
    from cli.worker_main import run_worker

    if index:
        _setup_logging(logging.getLogger().level <= logging.DEBUG, tag=f"[worker {index}] ")
    return run_event_loop(run_worker(config, kinds, drain=drain, show_progress=index == 0))


def read_task_templates(path: str) -> list[dict[str, Any]]:
    """`--tasks FILE`: a JSON list of task templates (or one object) for file documents."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FrugalError(f"--tasks {path}: cannot read a JSON list of tasks ({exc})") from None
    data = [data] if isinstance(data, dict) else data
    if not isinstance(data, list) or not all(isinstance(t, dict) for t in data):
        raise FrugalError(f"--tasks {path}: expected a JSON list of task objects")
    return data


def cmd_publish(args: argparse.Namespace, config: Config) -> int:
    from bus.broker import running_broker
    from cli.publish import PublishSummary, collect, publish

    if args.kind and args.kind not in JOB_KINDS:
        raise FrugalError(f"--kind: unknown kind {args.kind!r}; choose from {', '.join(JOB_KINDS)}")
    summary = PublishSummary(republished=args.republish)
    tasks = read_task_templates(args.tasks) if args.tasks else None
    records = collect(args.paths, args.kind, summary, config, args.glob, tasks)
    for problem in summary.skipped:
        print(f"skipped {problem}", file=sys.stderr)
    for problem in summary.unreadable:
        print(f"cannot convert {problem} (dead-lettered as invalid_job)", file=sys.stderr)
    with running_broker(config.kafka.bootstrap) as bootstrap:
        asyncio.run(publish(config, bootstrap, records, summary))
    for conflict in summary.conflicts:
        print(f"conflict {conflict}", file=sys.stderr)
    print(summary.line())
    return 1 if summary.skipped or summary.conflicts else 0


def cmd_topics(args: argparse.Namespace, config: Config) -> int:
    from bus.broker import running_broker
    from bus.topics import ensure_topics, partition_mismatches

    with running_broker(config.kafka.bootstrap) as bootstrap:
        counts = asyncio.run(ensure_topics(bootstrap, config.kafka))
    mismatches = partition_mismatches(config.kafka, counts)
    for line in mismatches:
        print(line)
    if mismatches:
        print(f"{len(counts)} topics ready; {len(mismatches)} differ from the configuration")
    else:
        print(
            f"{len(counts)} topics ready, as configured: {config.kafka.partitions} partitions"
            " each (the spend log: 1)"
        )
    return 0


def cmd_sql(args: argparse.Namespace, config: Config) -> int:
    from sinks.catalog import query
    from sinks.formatting import render

    print(render(query(config.storage, args.query), args.format))
    return 0


def cmd_report(args: argparse.Namespace, config: Config) -> int:
    from cli.report import render_report, render_spend_by

    if args.html:
        from pathlib import Path

        from cli.report_html import write_html_report

        print(f"wrote {write_html_report(config, Path(args.html))}")
        return 0
    if args.by:
        render_spend_by(config, args.by)
    else:
        render_report(config)
    return 0


def cmd_compact(args: argparse.Namespace, config: Config) -> int:
    from sinks.compaction import compact

    min_age = 0.0 if args.all else None
    print(compact(config.storage, min_age_s=min_age).line())
    return 0


def cmd_call(args: argparse.Namespace, config: Config) -> int:
    from cli.call import call_once

    result, code = asyncio.run(
        call_once(config, args.provider, args.model, args.prompt, args.json_schema)
    )
    print(json.dumps(result, ensure_ascii=False))
    return code


def cmd_sim(args: argparse.Namespace, config: Config) -> int:
    from providers.sim import run_sim

    print(f"provider simulator on http://127.0.0.1:{args.port}", file=sys.stderr)
    run_sim(config.sim, "127.0.0.1", args.port)
    return 0


def cmd_demo(args: argparse.Namespace, config: Config) -> int:
    from cli.demo import run_demo

    return run_demo(config)


def cmd_dlq_list(args: argparse.Namespace, config: Config) -> int:
    from cli.replay import list_dead_letters

    return list_dead_letters(config, args.kind)


def cmd_dlq_replay(args: argparse.Namespace, config: Config) -> int:
    from cli.replay import ReplayFilter, replay

    wanted = ReplayFilter(args.kind, args.error_type, args.exclude_provider or [], args.limit)
    return replay(config, wanted, dry_run=args.dry_run)


def cmd_batches(args: argparse.Namespace, config: Config) -> int:
    from cli.batches import cancel_batch, list_batches

    if args.action == "cancel":
        if not args.batch_id:
            raise FrugalError("frugal batches cancel needs a batch id")
        return cancel_batch(config, args.batch_id)
    return list_batches(config, args.status, args.format)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", help="config file (default ./frugal.toml, else built-in defaults)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser = argparse.ArgumentParser(prog="frugal", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text)
        p.set_defaults(handler=handler)
        return p

    add("broker", cmd_broker, "run the embedded broker in the foreground").add_argument(
        "--port", type=int, default=9092
    )
    p = add("worker", cmd_worker, "run stream workers")
    p.add_argument("--kinds", help="comma-separated job kinds (default: all)")
    p.add_argument("--drain", action="store_true", help="exit 0 once the backlog is done")
    p.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics at /metrics on this port"
    )
    p.add_argument("--metrics-host", help="address the metrics bind to (default 127.0.0.1)")
    p.add_argument(
        "--processes",
        help="worker processes in the group: a number or 'auto', one a core (default 1;"
        " process i serves metrics on metrics-port + i)",
    )
    p = add("publish", cmd_publish, "publish documents or JSON Lines of jobs")
    p.add_argument("--kind", help="topic for JSON Lines without a kind")
    p.add_argument("--glob", default="*", help="in directories, publish files matching this")
    p.add_argument("--tasks", help="JSON file: the task templates for documents made from files")
    p.add_argument("--republish", action="store_true", help="publish already-known records again")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, directories, or - for stdin")
    add("topics", cmd_topics, "create every topic explicitly (real Kafka does not)")
    p = add("sql", cmd_sql, "run SQL on the DuckDB catalog")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.add_argument("query")
    p = add("report", cmd_report, "cost and volume summary")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts")
    p.add_argument(
        "--by",
        choices=("tenant", "user", "agent", "session", "kind", "provider", "model", "mode", "day"),
        help="spend and tokens grouped by one attribution level",
    )
    p = add("compact", cmd_compact, "fold flush files into the lake, merge, apply retention")
    p.add_argument(
        "--all", action="store_true", help="also fold files younger than compact_after_s"
    )
    p = add("call", cmd_call, "one request through one provider, no routing")
    p.add_argument("--provider", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--json-schema", help="file with the output JSON Schema")
    p.add_argument("prompt")
    add("sim", cmd_sim, "run the provider simulator").add_argument("--port", type=int, default=8099)
    add("demo", cmd_demo, "what `make demo` runs")
    dlq = sub.add_parser("dlq", help="dead letters").add_subparsers(
        dest="dlq_command", required=True
    )
    p = dlq.add_parser("list", parents=[common], help="count dead letters by kind and error type")
    p.add_argument("--kind")
    p.set_defaults(handler=cmd_dlq_list)
    p = dlq.add_parser("replay", parents=[common], help="republish dead letters to their topic")
    p.add_argument("--kind")
    p.add_argument("--error-type")
    p.add_argument(
        "--exclude-provider", action="append", help="also avoid this provider (repeatable)"
    )
    p.add_argument("--limit", type=int)
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(handler=cmd_dlq_replay)
    p = add("batches", cmd_batches, "provider batches: list them, or `cancel ID`")
    p.add_argument("action", nargs="?", choices=("cancel",), help="cancel the batch ID")
    p.add_argument("batch_id", nargs="?")
    p.add_argument("--status", help="only batches in this status (open, ended, cancelled, ...)")
    p.add_argument(  # a narrow table shortens batch ids; csv and json keep them whole
        "--format", choices=("table", "csv", "json"), default="table"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.handler is not cmd_worker:
        gc.enable()  # off while the command imported (cli/entry.py); a worker: settle_heap
    _setup_logging(args.verbose)
    try:
        config = load_config(args.config)
        return int(args.handler(args, config))
    except FrugalError as error:
        print(f"frugal: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
