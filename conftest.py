"""Fixtures for every test and doctest of the repository."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog


@pytest.fixture(autouse=True, scope="session")
def _private_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:  # pyright: ignore[reportUnusedFunction]
    """Keep what tests and their subprocess apps cache (route tables) out of the user's cache."""
    previous = os.environ.get("XDG_CACHE_HOME")
    home = tmp_path_factory.mktemp("xdg-cache")
    os.environ["XDG_CACHE_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(autouse=True)
def _structlog_unconfigured() -> Iterator[None]:  # pyright: ignore[reportUnusedFunction]
    """Give each test structlog as a fresh process has it (``capture_logs`` leaves it set)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
