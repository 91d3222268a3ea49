"""Shared fixtures for the provider tests: one loopback replay server, and one full run of 500
jobs through three simulated providers (read by the accounting and the secrets tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from support.full_run import SIMS, FullRun, full_run
from support.provider_replay import ReplayServer

from bus.broker import EmbeddedBroker


@pytest_asyncio.fixture(scope="session")
async def replay_server() -> AsyncIterator[ReplayServer]:
    server = ReplayServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
def drained_run(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> FullRun:
    """500 mixed jobs published and drained once, with each simulated provider's bill."""
    return full_run(tmp_path_factory.mktemp("full-run"), broker.bootstrap, "full", SIMS)
