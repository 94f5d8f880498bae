"""Read a store's runs a page at a time, newest first, none twice and none lost.

Each page after the first starts after the last run of the page before, by its start time and
trace id (``SpanStore.runs(after=...)``): a cursor of start time alone would skip or repeat runs
that started in the same nanosecond on both sides of a cut.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.store.memory_store import MemoryStore
    >>> async def count(store):
    ...     return sum([len(page) async for page in run_pages(store)])
    >>> asyncio.run(count(MemoryStore()))
    0
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from agentmesh.collector.store.base import RunSummary, SpanStore

__all__ = ["PAGE_RUNS", "run_pages"]

PAGE_RUNS: Final = 256
"""The largest page: the runs whose spans a reader fetches in one query."""


async def run_pages(
    store: SpanStore,
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    first: int = PAGE_RUNS,
    most: int = PAGE_RUNS,
) -> AsyncIterator[list[RunSummary]]:
    """Yield the runs that started in a window, newest first, a page at a time.

    Pages start at ``first`` runs and grow fourfold up to ``most``, so a reader that needs only
    the newest few reads few. A page is never empty.

    Args:
        store: An open store.
        since_ns: Only runs that started at or after this time.
        until_ns: Only runs that started before this time.
        first: Runs in the first page (at least 1).
        most: The largest page (at least ``first``).

    Yields:
        Lists of run summaries.
    """
    size = max(1, first)
    most = max(size, most)
    after: tuple[int, str] | None = None
    while True:
        page = await store.runs(size, since_ns=since_ns, until_ns=until_ns, after=after)
        if page:
            yield page
        if len(page) < size:
            return
        after = (page[-1].start_ns, page[-1].trace_id)
        size = min(most, size * 4)
