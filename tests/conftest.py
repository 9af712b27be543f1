"""Fixtures: a running bot on loopback with the Slack stand-in and a fresh SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import Harness


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """A started bot with the local provider (0.5 s renders)."""
    h = await Harness(tmp_path).start()
    try:
        yield h
    finally:
        await h.close()
