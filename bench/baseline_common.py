"""What every baseline script shares: the calls to make, validation, cost, Parquet, timing.

Standard library, jsonschema and pyarrow only: the LiteLLM baseline runs in its own venv.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq

Answer = tuple[str, int, int]  # (answer text, input tokens, output tokens)


@dataclass
class Tally:
    """What a baseline did and when (epoch seconds)."""

    started: float = field(default_factory=time.time)
    first_answer: float = 0.0
    last_answer: float = 0.0
    results: list[dict[str, Any]] = field(default_factory=list)
    usage: list[dict[str, Any]] = field(default_factory=list)
    invalid: int = 0
    failed: int = 0

    def answered(self) -> None:
        now = time.time()
        self.first_answer = self.first_answer or now
        self.last_answer = now


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--calls", required=True, help="JSON Lines of prepared calls")
    parser.add_argument("--base-url", required=True, help="OpenAI-compatible base URL (.../v1)")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--out", required=True, help="directory for the Parquet files")
    parser.add_argument("--concurrency", type=int, default=64)
    return parser.parse_args()


def load_calls(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def chat_body(call: dict[str, Any], model: str) -> dict[str, Any]:
    """The body the worker's OpenAI adapter sends for this call (json_schema, strict)."""
    return {
        "model": model,
        "messages": chat_messages(call),
        "max_tokens": call["max_tokens"],
        "temperature": 0.0,
        "response_format": response_format(call),
    }


def chat_messages(call: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": call["system"]},
        {"role": "user", "content": call["prompt"]},
    ]


def response_format(call: dict[str, Any]) -> dict[str, Any]:
    spec = {"name": call["schema_name"], "schema": call["schema"], "strict": True}
    return {"type": "json_schema", "json_schema": spec}


_VALIDATORS: dict[str, jsonschema.protocols.Validator] = {}


def valid_output(call: dict[str, Any], text: str) -> dict[str, Any] | None:
    """The output object if it validates (label in labels; JSON Schema), else None."""
    try:
        output = json.loads(text)
    except ValueError:
        return None
    if not isinstance(output, dict):
        return None
    if call["labels"] is not None:
        return output if output.get("label") in call["labels"] else None
    key = json.dumps(call["schema"], sort_keys=True)
    validator = _VALIDATORS.get(key)
    if validator is None:
        validator = _VALIDATORS[key] = jsonschema.Draft202012Validator(call["schema"])
    return output if validator.is_valid(output) else None


def record(tally: Tally, call: dict[str, Any], model: str, answer: Answer, cost: float) -> None:
    text, input_tokens, output_tokens = answer
    tally.answered()
    output = valid_output(call, text)
    now = time.time()
    tally.usage.append(
        {
            "job_id": call["id"],
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost,
            "outcome": "ok" if output is not None else "invalid_output",
            "ts": now,
        }
    )
    if output is None:
        tally.invalid += 1
        return
    tally.results.append(
        {
            "job_id": call["id"],
            "kind": call["kind"],
            "output": json.dumps(output),
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost_usd": cost,
            "completed_at": now,
        }
    )


async def run_all(
    calls: list[dict[str, Any]], concurrency: int, one: Callable[[dict[str, Any]], Awaitable[None]]
) -> None:
    slots = asyncio.Semaphore(concurrency)

    async def bounded(call: dict[str, Any]) -> None:
        async with slots:
            await one(call)

    await asyncio.gather(*(bounded(c) for c in calls))


def finish(tally: Tally, out: str) -> None:
    """Write both tables as Parquet, then print the timings as one JSON line."""
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in (("results", tally.results), ("usage", tally.usage)):
        if rows:
            pq.write_table(pa.Table.from_pylist(rows), directory / f"{name}.parquet")
    print(
        json.dumps(
            {
                "records": len(tally.results),
                "invalid": tally.invalid,
                "failed": tally.failed,
                "started": tally.started,
                "first_answer": tally.first_answer,
                "last_answer": tally.last_answer,
                "done": time.time(),
            }
        )
    )
