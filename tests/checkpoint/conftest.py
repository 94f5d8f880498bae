"""Fixtures of the checkpoint tests: ``store`` is a fresh store of every backend in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _ckpt_stores import BACKENDS, open_backend

from agentmesh.checkpoint.store import CheckpointStore


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CheckpointStore]:
    """A fresh, entered checkpoint store (memory, DuckDB, Redis, Postgres)."""
    async with open_backend(str(request.param), request, tmp_path) as opened:
        yield opened
