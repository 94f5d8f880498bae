"""Fixtures for every test and doctest of the repository."""

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_unconfigured() -> Iterator[None]:  # pyright: ignore[reportUnusedFunction]
    """Give each test structlog as a fresh process has it (``capture_logs`` leaves it set)."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
