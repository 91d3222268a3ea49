"""Shared fixtures for the provider adapter tests: one loopback replay server per session."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from provider_replay import ReplayServer


@pytest_asyncio.fixture(scope="session")
async def replay_server() -> AsyncIterator[ReplayServer]:
    server = ReplayServer()
    await server.start()
    yield server
    await server.stop()
