"""Links a resumed run to the run it continues when the run does not say which.

A LangGraph thread paused at an interrupt is usually resumed by another request, often in
another process (a web worker, a job runner), than the one that saw it pause. Its run then
carries ``agentmesh.run.resumed`` and its conversation (``gen_ai.conversation.id``: the
thread) but not ``agentmesh.resume.from_run_id``, which only the process that saw the pause
can set. :class:`ResumeLinks` fills the gap before graphs are stored: such a run continues
the conversation's previous run, the latest run of the same conversation that started
before it (:meth:`SpanStore.previous_run`), whether that run paused, failed or was stopped.

The lookup is one indexed query per resumed run, not per write: a found link is remembered
for the trace (bounded), a miss is retried after ``retry_seconds`` (the previous run's
graph may not be stored yet), and a store that fails leaves the run unlinked for now
without failing the write.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.graph.run_graph import RunGraph
    >>> from agentmesh.collector.store.memory_store import MemoryStore
    >>> async def demo() -> str | None:
    ...     async with MemoryStore() as store:
    ...         paused = RunGraph("t1", "run-1", start_ns=1, conversation_id="c", paused=True)
    ...         await store.write_graph(paused)
    ...         later = RunGraph("t2", "run-2", start_ns=5, conversation_id="c", resumed=True)
    ...         [linked] = await ResumeLinks(store).link([later])
    ...         return linked.resumed_from
    >>> asyncio.run(demo())
    'run-1'
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.store.base import SpanStore
from agentmesh.core.log import get_logger

__all__ = ["ResumeLinks"]

log = get_logger(__name__)


class ResumeLinks:
    """Fills ``resumed_from`` of resumed runs from their conversation's previous run.

    Args:
        store: Where the previous run is looked up.
        capacity: Traces whose lookup is remembered, at most (the oldest are forgotten).
        retry_seconds: How long a trace whose lookup found nothing (or failed) waits before
            the next lookup.
        clock: Monotonic seconds (for tests).
    """

    def __init__(
        self,
        store: SpanStore,
        *,
        capacity: int = 4096,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._capacity = capacity
        self._retry = retry_seconds
        self._clock = clock
        # trace -> (the run it continues or None, monotonic time of the next lookup)
        self._known: dict[str, tuple[str | None, float]] = {}
        self._lookups = 0

    @property
    def lookups(self) -> int:
        """Store lookups made so far."""
        return self._lookups

    async def link(self, graphs: list[RunGraph]) -> list[RunGraph]:
        """Return the graphs with the runs they continue filled in where it was missing.

        Args:
            graphs: The graphs about to be stored (not changed).

        Returns:
            ``graphs`` itself when no graph needed a link (the common case), else a copy with
            the linked graphs replaced.
        """
        out = graphs
        for index, graph in enumerate(graphs):
            if not graph.resumed or graph.resumed_from is not None:
                continue
            conversation = graph.conversation_id
            if conversation is None:
                continue
            previous = await self._previous(graph, conversation)
            if previous is not None:
                if out is graphs:
                    out = list(graphs)
                out[index] = dataclasses.replace(graph, resumed_from=previous)
        return out

    async def _previous(self, graph: RunGraph, conversation: str) -> str | None:
        now = self._clock()
        known = self._known.get(graph.trace_id)
        if known is not None and now < known[1]:
            return known[0]
        self._lookups += 1
        try:
            found = await self._store.previous_run(conversation, before_ns=graph.start_ns)
        except Exception:
            log.warning("resume_link_lookup_failed", trace_id=graph.trace_id, exc_info=True)
            found = None
        previous = None if found is None or found.run_id == graph.run_id else found.run_id
        # a link found is kept for good; a miss is looked up again after the delay
        self._remember(graph.trace_id, previous, math.inf if previous else now + self._retry)
        return previous

    def _remember(self, trace_id: str, previous: str | None, retry_at: float) -> None:
        known = self._known
        known.pop(trace_id, None)
        known[trace_id] = (previous, retry_at)
        while len(known) > self._capacity:
            del known[next(iter(known))]
