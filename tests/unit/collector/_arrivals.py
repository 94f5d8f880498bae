"""Simulated span arrival for detector tests: spans come when they end, plus an export lag."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from agentmesh.collector.model import SpanRecord

SECOND = 1_000_000_000


def timed(span: SpanRecord, start_ns: int, end_ns: int) -> SpanRecord:
    """The span, moved to the given start and end."""
    return replace(span, start_ns=start_ns, end_ns=end_ns)


def arrivals(
    spans: list[SpanRecord],
    lag_ns: Callable[[SpanRecord], int],
    *,
    window_ns: int = SECOND,
) -> list[list[SpanRecord]]:
    """Group spans into the batches a collector would receive.

    Each span arrives at its end plus its lag; one batch per ``window_ns`` of arrival time,
    in arrival order.
    """
    timed_spans = sorted(((s.end_ns + lag_ns(s), i, s) for i, s in enumerate(spans)))
    batches: list[list[SpanRecord]] = []
    current: list[SpanRecord] = []
    edge: int | None = None
    for at, _, span in timed_spans:
        if edge is None:
            edge = at + window_ns
        if at >= edge:
            batches.append(current)
            current = []
            while at >= edge:
                edge += window_ns
        current.append(span)
    if current:
        batches.append(current)
    return batches


def random_lag(seed: int, max_lag_ns: int) -> Callable[[SpanRecord], int]:
    """A lag drawn for each span, up to ``max_lag_ns`` (several exporters, several delays)."""
    rng = random.Random(seed)
    return lambda _span: rng.randrange(max_lag_ns)
