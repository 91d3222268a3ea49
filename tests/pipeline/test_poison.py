"""Poison records mixed with valid jobs: each becomes an `invalid_job` dead letter, the rest run."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from support.frugal_testkit import (
    SIM_KEY,
    default_models,
    jsonl,
    lake_query,
    run_frugal,
    sim_providers,
    write_config,
)

from bench.samples import invoices, support_tickets
from bus.broker import EmbeddedBroker
from providers.sim import SimThread
from schemas.config import SimConfig

PREFIX = "poison-e2e"
CONTEXT_WINDOW = 8_000  # tokens: small, so an input larger than every model's window stays small
LABELS = ["billing", "bug"]


def _job(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


# (topic kind, key, raw value, a word the dead letter's error must contain)
POISON: list[tuple[str, str | None, bytes, str]] = [
    ("classify", None, b"this is not json", "not JSON"),
    ("classify", None, b"\x00\x9f\xff\xfe\x80binary", "not JSON"),
    ("classify", None, b"", "not JSON"),
    ("classify", "p-empty-object", b"{}", "id"),
    ("classify", "p-array", b"[1, 2, 3]", "expected an object"),
    ("classify", "p-no-labels", _job(id="p-no-labels", input="hi"), "labels"),
    ("classify", "p-id-type", _job(id=42, input="hi", labels=LABELS), "id"),
    ("classify", "p-labels-type", _job(id="p-labels-type", input="hi", labels="bug"), "labels"),
    ("classify", "p-empty-labels", _job(id="p-empty-labels", input="hi", labels=[]), "labels"),
    ("classify", "p-blank-label", _job(id="p-blank-label", input="x", labels=[" "]), "blank"),
    (
        "classify",
        "p-unknown-kind",
        _job(id="p-unknown-kind", kind="translate", input="hi"),
        "translate",
    ),
    (
        "extract",
        "p-bad-schema",
        _job(id="p-bad-schema", input="hi", schema={"type": "object", "properties": 5}),
        "JSON Schema",
    ),
    (
        "classify",
        "p-too-large",
        _job(id="p-too-large", input="lorem ipsum dolor " * 6_000, labels=LABELS),
        "context window",
    ),
    ("ingest", "p-doc-no-text", _job(id="p-doc-no-text", title="x"), "text"),
]


async def _publish_raw(bootstrap: str, records: list[tuple[str, str | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for topic, key, value in records:
            await producer.send_and_wait(topic, value, key=key.encode() if key else None)
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
def poisoned(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("poison")
    models = [{**m, "context_window": CONTEXT_WINDOW} for m in default_models()]
    with SimThread(SimConfig(api_key=SIM_KEY)) as sim:
        base = sim.base_url
        config = write_config(
            tmp / "frugal.toml",
            prefix=PREFIX,
            data_dir=tmp / "data",
            providers=sim_providers({"openai": base, "anthropic": base, "gemini": base}),
            models=models,
        )
        valid = support_tickets(30) + invoices(10)
        half = len(valid) // 2
        # Valid jobs before and after the poison, so poison sits in the middle of partitions.
        first = run_frugal(
            ["publish", "--config", str(config), "-"],
            bootstrap=broker.bootstrap,
            stdin=jsonl(valid[:half]),
        )
        assert first.returncode == 0, first.stderr
        raw = [(f"{PREFIX}.{kind}", key, value) for kind, key, value, _ in POISON]
        asyncio.run(_publish_raw(broker.bootstrap, raw))
        second = run_frugal(
            ["publish", "--config", str(config), "-"],
            bootstrap=broker.bootstrap,
            stdin=jsonl(valid[half:]),
        )
        assert second.returncode == 0, second.stderr
        drain = run_frugal(
            ["worker", "--config", str(config), "--drain"], bootstrap=broker.bootstrap, timeout=120
        )
    return {"data": tmp / "data", "valid": valid, "drain": drain}


def letters(data: Any) -> list[dict[str, Any]]:
    columns = ["job_id", "kind", "error_type", "error", "raw", "source_topic", "source_offset"]
    rows = lake_query(data, f"SELECT {', '.join(columns)} FROM dead_letters_all")
    return [dict(zip(columns, row, strict=True)) for row in rows]


def test_the_drain_exits_0_without_a_traceback(poisoned: dict[str, Any]) -> None:
    drain = poisoned["drain"]
    assert drain.returncode == 0, drain.stderr[-3000:]
    assert "Traceback" not in drain.stderr


def test_every_valid_job_is_done_correctly(poisoned: dict[str, Any]) -> None:
    rows = lake_query(poisoned["data"], "SELECT job_id, output FROM results_all")
    outputs = {job_id: json.loads(output) for job_id, output in rows}
    assert len(rows) == len(poisoned["valid"])
    for job in poisoned["valid"]:
        assert outputs[job["id"]] == job["metadata"]["expected"], job["id"]


def test_every_poison_record_is_an_invalid_job_dead_letter(poisoned: dict[str, Any]) -> None:
    found = letters(poisoned["data"])
    assert len(found) == len(POISON)
    by_raw = {base64.b64decode(letter["raw"]): letter for letter in found}
    for kind, key, value, why in POISON:
        letter = by_raw[value]  # the raw bytes are kept exactly
        assert letter["error_type"] == "invalid_job"
        assert letter["kind"] == kind
        assert why in letter["error"], (value[:40], letter["error"])
        assert letter["source_topic"] == f"{PREFIX}.{kind}"
        assert letter["source_offset"] >= 0
        if key:
            assert letter["job_id"] == key


def test_an_error_message_is_one_clear_line(poisoned: dict[str, Any]) -> None:
    for letter in letters(poisoned["data"]):
        assert "\n" not in letter["error"]
        assert "Traceback" not in letter["error"]
        assert len(letter["error"]) < 300, letter["error"]
