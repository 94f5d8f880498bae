"""Graphs of runs whose spans arrive after the run left memory: :class:`LateGraphs`.

The graph builder keeps a run in memory while it is live, and a little after (see
:class:`~agentmesh.collector.graph.builder.GraphBuilder`). A span that arrives once its run has
left (retired after its linger time, expired while idle, or evicted to bound memory) is
*late*: it is stored with the others, but a graph built from the late spans alone would
replace the stored graph with a fragment. Instead, the pipeline notes the run here once its
late spans are stored; a moment later (so that a burst of late spans is handled once) the run's
graph is rebuilt from every span the store holds for it and written through the pipeline's own
graph path (resume links included), and the graph rules run on it.

The work is bounded: at most ``max_pending`` runs wait (more are dropped and counted), and
each round reads the spans of at most ``chunk`` runs in one store call. While the store is
unavailable (:class:`~agentmesh.core.StoreUnavailableError` from the read or the write), the
runs wait and are tried again every :data:`RETRY_SECONDS` at least; any other failure is
counted and logged, and those runs are not tried again.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.store.memory_store import MemoryStore
    >>> from agentmesh.collector.testing import SpanFactory
    >>> async def demo() -> list[str]:
    ...     f = SpanFactory()
    ...     root = f.workflow("research", run_id="run-1")
    ...     late = f.agent("writer", parent=root)
    ...     store = MemoryStore()
    ...     await store.write_spans([root, late])
    ...     written: list[str] = []
    ...     async def write(graphs):
    ...         written.extend(sorted(graphs[0].agents))
    ...     async with LateGraphs(store.spans_of, write, delay_seconds=0) as late_graphs:
    ...         late_graphs.note({f.trace_id})
    ...         await late_graphs.flush()
    ...     return written
    >>> asyncio.run(demo())
    ['writer']
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from types import TracebackType
from typing import Final, Self

from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.model import SpanRecord
from agentmesh.core.errors import CollectorError, StoreUnavailableError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait

__all__ = ["DEFAULT_DELAY_SECONDS", "RETRY_SECONDS", "LateGraphs"]

log = get_logger(__name__)

DEFAULT_DELAY_SECONDS: Final = 2.0
"""How long a noted run waits for more of its late spans before its graph is rebuilt."""

RETRY_SECONDS: Final = 1.0
"""Least time between two tries while the store is unavailable."""

SpanReader = Callable[[Sequence[str]], Awaitable[dict[str, list[SpanRecord]]]]
"""``SpanStore.spans_of``: the stored spans of each trace."""

GraphWriter = Callable[[list[RunGraph]], Awaitable[object]]
"""Writes rebuilt graphs (the pipeline's graph path)."""


class LateGraphs:
    """Rebuilds, from the store, the graphs of runs that received spans after leaving memory.

    Use it as an async context manager: it owns the task that rebuilds; leaving rebuilds what
    is still noted, then stops.

    Args:
        read: Returns the stored spans of traces (``SpanStore.spans_of``).
        write: Writes the rebuilt graphs.
        delay_seconds: How long a noted run waits for more late spans first.
        max_pending: Runs that may wait; more are dropped (counted, logged).
        chunk: Runs rebuilt per store read.

    Raises:
        CollectorError: A bound is out of range.
    """

    def __init__(
        self,
        read: SpanReader,
        write: GraphWriter,
        *,
        delay_seconds: float = DEFAULT_DELAY_SECONDS,
        max_pending: int = 10_000,
        chunk: int = 100,
    ) -> None:
        if delay_seconds < 0:
            raise CollectorError(f"delay_seconds must be 0 or more, got {delay_seconds}")
        if max_pending < 1 or chunk < 1:
            raise CollectorError(
                f"max_pending and chunk must be at least 1, got {max_pending} and {chunk}"
            )
        self._read = read
        self._write = write
        self._delay = delay_seconds
        self._max_pending = max_pending
        self._chunk = chunk
        self._pending: dict[str, None] = {}  # insertion-ordered set: oldest noted first
        self._noted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one round at a time (the task's, or a flush)
        self._rebuilt = 0
        self._dropped = 0
        self._failed = 0
        self._stalled = False  # the last round found the store unavailable

    @property
    def rebuilt(self) -> int:
        """Graphs rebuilt and handed to the writer."""
        return self._rebuilt

    @property
    def dropped(self) -> int:
        """Runs not rebuilt because too many were waiting."""
        return self._dropped

    @property
    def failed(self) -> int:
        """Runs whose rebuild failed (store read or write; logged)."""
        return self._failed

    @property
    def pending(self) -> int:
        """Runs waiting to be rebuilt."""
        return len(self._pending)

    def note(self, trace_ids: Iterable[str]) -> None:
        """Ask for these traces' graphs to be rebuilt (their late spans are stored).

        Args:
            trace_ids: The traces.
        """
        pending = self._pending
        dropped = 0
        for trace_id in trace_ids:
            if trace_id in pending:
                continue
            if len(pending) >= self._max_pending:
                dropped += 1
                continue
            pending[trace_id] = None
        if dropped:
            self._dropped += dropped
            log.warning(
                "late spans: graphs not rebuilt, too many waiting",
                runs=dropped,
                max_pending=self._max_pending,
            )
        if pending:
            self._noted.set()

    async def flush(self) -> None:
        """Rebuild every noted graph now (without the delay); stop early if the store is away."""
        while self._pending:
            if not await self._round():
                return

    async def _round(self) -> bool:
        """Rebuild up to ``chunk`` noted graphs; ``False`` when the store was unavailable."""
        async with self._lock:
            pending = self._pending
            if not pending:
                return True
            taken = list(itertools.islice(pending, self._chunk))
            for trace_id in taken:
                del pending[trace_id]
            try:
                stored = await self._read(taken)
                graphs: list[RunGraph] = []
                for spans in stored.values():
                    graph = _graph_of(spans)
                    if graph is not None:
                        graphs.append(graph)
                    await asyncio.sleep(0)  # a long run takes a while: receivers keep answering
                if graphs:
                    await self._write(graphs)
            except (asyncio.CancelledError, StoreUnavailableError) as exc:
                for trace_id in taken:  # tried again later (stopped: by the final flush)
                    pending.setdefault(trace_id)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if not self._stalled:
                    log.warning(
                        "late spans: the store is unavailable, graphs wait", runs=len(pending)
                    )
                self._stalled = True
                return False
            except Exception:
                self._failed += len(taken)
                log.exception("late spans: graphs not rebuilt", runs=len(taken))
                return True
            self._stalled = False
            self._rebuilt += len(graphs)
            return True

    async def _run(self) -> None:
        while True:
            if not self._pending:
                await self._noted.wait()
            # more late spans of the same runs come together; a store that was away is given time
            await asyncio.sleep(max(self._delay, RETRY_SECONDS) if self._stalled else self._delay)
            self._noted.clear()
            await self.flush()

    async def start(self) -> None:
        """Start the task that rebuilds.

        Raises:
            CollectorError: It is running already.
        """
        if self._task is not None:
            raise CollectorError("late graphs are already being rebuilt")
        self._task = asyncio.create_task(self._run(), name="agentmesh-late-graphs")

    async def stop(self) -> None:
        """Rebuild what is noted, then stop the task."""
        task, self._task = self._task, None
        if task is None:
            return
        await cancel_and_wait(task)
        await self.flush()
        if self._pending:
            log.error("late spans: graphs not rebuilt, the store is unavailable", runs=self.pending)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


def _graph_of(spans: list[SpanRecord]) -> RunGraph | None:
    """The graph of one trace's stored spans (``None`` when none are stored)."""
    if not spans:
        return None
    builder = GraphBuilder(max_traces=1)
    builder.add(spans)
    return builder.get(spans[0].trace_id)
