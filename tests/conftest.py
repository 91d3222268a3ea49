"""Shared fixtures: one real broker for the session, simulators on loopback, config files."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.kafka_kit import NOT_RUN, KafkaKitBroker, kit_dir

from bus.broker import EmbeddedBroker

_names = itertools.count()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as running:
        yield running


@pytest.fixture(scope="session")
def real_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaKitBroker]:
    """A real Apache Kafka 3.1 broker for the session, or a skip that says the run was not done."""
    kit = kit_dir()
    if kit is None:
        pytest.skip(NOT_RUN)
    with KafkaKitBroker(kit, tmp_path_factory.mktemp("kafka")) as running:
        yield running


@pytest.fixture(scope="module", params=["embedded", "kafka"])
def each_broker(request: pytest.FixtureRequest) -> EmbeddedBroker | KafkaKitBroker:
    """The broker a test must hold on: the embedded Tansu, then a real Kafka where the kit is named."""
    name = "broker" if request.param == "embedded" else "real_kafka"
    broker: EmbeddedBroker | KafkaKitBroker = request.getfixturevalue(name)
    return broker


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """A topic prefix (and consumer group) of the test's own on the shared broker."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
    return f"t{next(_names)}-{name}"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
