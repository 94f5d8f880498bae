"""Read a store's runs a page at a time, newest first, none twice and none lost.

``SpanStore.runs(limit, until_ns=...)`` pages by start time; runs that started in the same
nanosecond on both sides of a page's cut would be skipped by a plain "before the oldest"
cursor. The next page therefore ends just after the oldest start of the page before (so the
runs of that nanosecond are read again) and the runs already yielded are dropped.

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
    the newest few reads few. A page can be shorter than its size when some of its runs were
    yielded already; it is never empty.

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
    before = until_ns
    again: set[str] = set()  # the runs of the last page's oldest nanosecond, read again
    while True:
        page = await store.runs(size, since_ns=since_ns, until_ns=before)
        fresh = [run for run in page if run.trace_id not in again]
        if fresh:
            yield fresh
        if len(page) < size:
            return
        oldest = page[-1].start_ns
        if page[0].start_ns == oldest:  # a whole page in one nanosecond: cut strictly there
            before, again = oldest, set[str]()
        else:
            before = oldest + 1
            again = {run.trace_id for run in page if run.start_ns == oldest}
        size = min(most, size * 4)
