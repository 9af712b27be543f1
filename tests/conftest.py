"""Fixtures: a running bot on loopback with the Slack stand-in and a fresh SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.toapis_server import FakeToAPIs
from tests.harness import Harness

OPENAI_KEY = "sk-test-key"
TOAPIS_KEY = "toapis-test-key"


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """A started bot with the local provider (0.5 s renders)."""
    h = await Harness(tmp_path).start()
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    """A local OpenAI Images API (accepts OPENAI_KEY)."""
    fake = FakeOpenAI(api_key=OPENAI_KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def toapis_fake() -> AsyncIterator[FakeToAPIs]:
    """A local ToAPIs task API (accepts TOAPIS_KEY)."""
    fake = FakeToAPIs(api_key=TOAPIS_KEY)
    await fake.start()
    yield fake
    await fake.stop()
