"""Find a stored run by run id or trace id, or a unique prefix of either.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.store.memory_store import MemoryStore
    >>> try:
    ...     asyncio.run(find_run(MemoryStore(), "run-1"))
    ... except RunNotFoundError as exc:
    ...     print(exc)
    no run matches 'run-1'; `agentmesh runs` lists them
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from agentmesh.collector.detection import Detection
from agentmesh.collector.store.base import RunSummary, SpanStore, StoredGraph
from agentmesh.core import ConfigError

__all__ = ["MAX_MATCHES", "GraphNotStoredError", "RunNotFoundError", "find_graph", "find_run"]

MAX_MATCHES: Final = 100
"""Most matching runs counted when a lookup is ambiguous (the error says "more than" beyond)."""
_NAMED: Final = 5
"""Most matching runs an ambiguous lookup's error names."""


class RunNotFoundError(ConfigError):
    """No stored run, or more than one, matches what was asked for.

    Attributes:
        matches: How many runs matched (0 or more than 1; at most :data:`MAX_MATCHES` + 1,
            which stands for "more than :data:`MAX_MATCHES`").
    """

    def __init__(self, wanted: str, matches: int, candidates: Sequence[RunSummary] = ()) -> None:
        if matches == 0:
            found = "no run"
        elif matches > MAX_MATCHES:
            found = f"more than {MAX_MATCHES} runs"
        else:
            found = f"{matches} runs"
        if 0 < len(candidates) <= _NAMED:  # a few: name them, with what tells them apart
            named = ", ".join(f"{c.run_id!r} (trace {c.trace_id})" for c in candidates)
            advice = f": {named}; name one by its trace id"
        else:
            advice = "; `agentmesh runs` lists them"
        verb = "matches" if matches == 0 else "match"
        super().__init__(f"{found} {verb} {wanted!r}{advice}")
        self.matches = matches


class GraphNotStoredError(ConfigError):
    """The run is stored but its graph is not yet (its spans are still being graphed)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} has no stored graph yet")


async def find_run(store: SpanStore, run: str) -> RunSummary:
    """Return the one stored run whose run id or trace id is, or starts with, ``run``.

    Case is ignored, except to choose between runs whose ids differ only in case. A run
    matched exactly wins over others that only start with ``run``.

    Args:
        store: The open span store.
        run: A run id or trace id, or a unique prefix of one.

    Returns:
        The run's summary.

    Raises:
        RunNotFoundError: No run, or several, match ``run``.
    """
    asked = run.strip()
    wanted = asked.lower()
    if not wanted:
        raise RunNotFoundError(run, 0)
    # the store matches and ranks (exact matches first): no listing of every run
    matches = await store.find_runs(wanted, limit=MAX_MATCHES + 1)
    exact = [m for m in matches if wanted in (m.run_id.lower(), m.trace_id)]
    if len(exact) > 1:  # "Run-A" and "run-a": the one written as asked wins
        exact = [m for m in exact if asked in (m.run_id, m.trace_id)] or exact
    if exact:
        matches = exact
    if len(matches) != 1:
        raise RunNotFoundError(run, len(matches), matches)
    return matches[0]


async def find_graph(store: SpanStore, run: str) -> tuple[StoredGraph, list[Detection]]:
    """Return the graph and the detections of the run :func:`find_run` finds.

    Args:
        store: The open span store.
        run: A run id or trace id, or a unique prefix of one.

    Returns:
        The stored graph and the run's detections, oldest first.

    Raises:
        RunNotFoundError: No run, or several, match ``run``.
        GraphNotStoredError: The run has no stored graph yet.
    """
    summary = await find_run(store, run)
    graph = await store.graph(summary.trace_id)
    if graph is None:
        raise GraphNotStoredError(summary.run_id)
    return graph, await store.detections(summary.trace_id)
