"""The stream through the real collector pipeline, on a virtual clock, timed.

Requests are offered to a :class:`~agentmesh.collector.pipeline.Pipeline` (real graph builder,
real rules and detectors, a :class:`~agentmesh.collector.store.memory_store.MemoryStore`) in
the order the apps send them, as fast as the pipeline takes them: each request is offered and
drained before the next, so a cycle is one request, as under light load.

Time is virtual. The graph builder's clock and every detector's notion of *now* follow the
export time of the request being processed, not the wall clock: each detector is wrapped
(:class:`TimedDetector`) so that the cycle it observes carries the virtual time, and it is
ticked with virtual time every ``tick_ms`` of virtual time by the replay (the pipeline's own
ticker, which runs on the wall clock, only collects what those ticks found). The wrappers also
measure the time spent inside rules and detectors, and note when each detection was produced.

Delay of a detection, as it would be in real time: for one found while observing spans, from
the arrival of the request holding the latest of its spans (the detection's ``span_ids`` that had
arrived, else the span the ground truth names) to the moment the pipeline handed the detection
to its listener. When the detection came in the same cycle as that request, that is
wall-clock time (offer to listener); when it came later (a rule that waits for the run to
settle), the virtual time waited (its production's virtual time minus the request's) plus the
wall-clock time from its production to the listener. For a detection found by a tick (a step
overdue) it is the wall-clock time from the tick to the listener (the tick's own period, 50 ms
in the collector, comes on top).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from _detection.generate import Dataset
from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import CycleView, Detector, Rule
from agentmesh.collector.graph.builder import GraphBuilder
from agentmesh.collector.graph.run_graph import RunGraph
from agentmesh.collector.pipeline import Pipeline, PipelineStats
from agentmesh.collector.store.memory_store import MemoryStore

__all__ = [
    "Meter",
    "Observed",
    "ReplayResult",
    "TimedDetector",
    "TimedRule",
    "VirtualClock",
    "replay",
]


class VirtualClock:
    """The replay's notion of now (Unix nanoseconds of virtual time).

    Args:
        now_ns: Start.
    """

    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def seconds(self) -> float:
        """Now in seconds (the graph builder's clock).

        Returns:
            Virtual seconds.
        """
        return self.now_ns / 1e9


@dataclass(slots=True)
class Meter:
    """Time spent inside rules and detectors, per name.

    Attributes:
        observe_ns: In ``evaluate`` and ``observe`` calls.
        tick_ns: In ``tick`` calls.
        ticks: Virtual ticks (each ticks every detector).
        calls: Timed calls in all (each costs the timer's own overhead once).
        timer_ns: The timer's own cost per call (the smallest of many back-to-back readings),
            taken off the figures by :meth:`net_observe_ns` and :meth:`net_tick_ns`.
        errors: Exceptions raised, per name.
        produced: When each detection was first produced: virtual ns, wall (perf) ns, source.
    """

    observe_ns: dict[str, int] = field(default_factory=lambda: dict[str, int]())
    tick_ns: dict[str, int] = field(default_factory=lambda: dict[str, int]())
    ticks: int = 0
    calls: dict[str, int] = field(default_factory=lambda: dict[str, int]())
    tick_calls: dict[str, int] = field(default_factory=lambda: dict[str, int]())
    timer_ns: int = field(default_factory=lambda: _timer_overhead_ns())
    errors: dict[str, int] = field(default_factory=lambda: dict[str, int]())
    produced: dict[str, tuple[int, int, str]] = field(
        default_factory=lambda: dict[str, tuple[int, int, str]]()
    )

    def net_observe_ns(self, name: str) -> int:
        """Time in ``evaluate``/``observe`` of one rule or detector, the timer's cost taken off.

        Args:
            name: Its class name.

        Returns:
            Nanoseconds.
        """
        return max(0, self.observe_ns.get(name, 0) - self.calls.get(name, 0) * self.timer_ns)

    def net_tick_ns(self, name: str) -> int:
        """Time in ``tick`` of one detector, the timer's cost taken off.

        Args:
            name: Its class name.

        Returns:
            Nanoseconds.
        """
        return max(0, self.tick_ns.get(name, 0) - self.tick_calls.get(name, 0) * self.timer_ns)

    def note(self, detections: Sequence[Detection], virtual_ns: int, source: str) -> None:
        """Remember when detections were produced (the first time only).

        Args:
            detections: What a call returned.
            virtual_ns: Virtual time of the call.
            source: ``span`` (observed or evaluated) or ``tick``.
        """
        if not detections:
            return
        now = time.perf_counter_ns()
        for detection in detections:
            self.produced.setdefault(detection.id, (virtual_ns, now, source))


def _timer_overhead_ns() -> int:
    clock = time.perf_counter_ns
    best = 1 << 62
    for _ in range(2_000):
        started = clock()
        best = min(best, clock() - started)
    return best


class TimedRule:
    """A rule, timed.

    Args:
        inner: The rule.
        clock: Virtual clock.
        meter: Where time goes.
    """

    def __init__(self, inner: Rule, clock: VirtualClock, meter: Meter) -> None:
        self._inner = inner
        self._clock = clock
        self._meter = meter
        self._key = f"{type(inner).__name__}"
        meter.observe_ns.setdefault(self._key, 0)

    @property
    def name(self) -> str:
        """The inner rule's name."""
        return self._inner.name

    def evaluate(self, graph: RunGraph) -> list[Detection]:
        """Evaluate the inner rule, timed.

        Args:
            graph: The run's graph.

        Returns:
            Its detections.
        """
        meter = self._meter
        started = time.perf_counter_ns()
        try:
            found = self._inner.evaluate(graph)
        except Exception:
            meter.errors[self._key] = meter.errors.get(self._key, 0) + 1
            raise
        finally:
            meter.observe_ns[self._key] += time.perf_counter_ns() - started
            meter.calls[self._key] = meter.calls.get(self._key, 0) + 1
        meter.note(found, self._clock.now_ns, "span")
        return found


class TimedDetector:
    """A streaming detector on the virtual clock, timed.

    Args:
        inner: The detector.
        clock: Virtual clock.
        meter: Where time goes.
    """

    def __init__(self, inner: Detector, clock: VirtualClock, meter: Meter) -> None:
        self._inner = inner
        self._clock = clock
        self._meter = meter
        self._key = f"{type(inner).__name__}"
        self._pending: list[Detection] = []
        meter.observe_ns.setdefault(self._key, 0)
        meter.tick_ns.setdefault(self._key, 0)

    @property
    def name(self) -> str:
        """The inner detector's name."""
        return self._inner.name

    @property
    def pending(self) -> int:
        """Detections found by virtual ticks, not yet collected by the pipeline."""
        return len(self._pending)

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Observe a cycle at virtual time; also hand over what ticks found.

        Args:
            cycle: The pipeline's cycle (its wall-clock ``now_ns`` is replaced).

        Returns:
            Detections.
        """
        meter = self._meter
        view = CycleView(cycle.nodes, cycle.graphs, self._clock.now_ns)
        started = time.perf_counter_ns()
        try:
            found = self._inner.observe(view)
        except Exception:
            meter.errors[self._key] = meter.errors.get(self._key, 0) + 1
            raise
        finally:
            meter.observe_ns[self._key] += time.perf_counter_ns() - started
            meter.calls[self._key] = meter.calls.get(self._key, 0) + 1
        meter.note(found, self._clock.now_ns, "span")
        if self._pending:
            found = self._pending + found
            self._pending = []
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """The pipeline's wall-clock tick: hand over what virtual ticks found.

        Args:
            now_ns: Wall-clock time (ignored).

        Returns:
            Detections found by :meth:`advance` since the last collection.
        """
        del now_ns
        found, self._pending = self._pending, []
        return found

    def advance(self, now_ns: int) -> None:
        """Tick the inner detector at a virtual time.

        Args:
            now_ns: Virtual time.
        """
        meter = self._meter
        started = time.perf_counter_ns()
        try:
            found = self._inner.tick(now_ns)
        except Exception:  # noqa: BLE001 - counted (the pipeline would log it)
            meter.errors[self._key] = meter.errors.get(self._key, 0) + 1
            return
        finally:
            meter.tick_ns[self._key] += time.perf_counter_ns() - started
            meter.tick_calls[self._key] = meter.tick_calls.get(self._key, 0) + 1
        meter.note(found, now_ns, "tick")
        self._pending.extend(found)


@dataclass(frozen=True, slots=True)
class Observed:
    """A detection as the pipeline handed it over.

    Attributes:
        detection: The detection.
        virtual_ns: Virtual time it was produced.
        source: ``span`` or ``tick``.
        delay_ms: Wall-clock delay (see the module docstring), ``None`` when unknown.
    """

    detection: Detection
    virtual_ns: int
    source: str
    delay_ms: float | None


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What the replay saw.

    Attributes:
        detections: Every new detection, in the order the pipeline handed them over.
        meter: Time inside rules and detectors.
        stats: The pipeline's counters.
        spans: Spans offered.
        requests: Requests offered.
        wall_s: Wall-clock seconds of the replay.
        cpu_share: CPU time this process got over the replay's wall time (below 1 on a loaded
            machine: timings inside detectors are stretched by about its inverse).
        cpu_s: CPU seconds of this process over the replay (everything: stream handling,
            pipeline, store, rules, detectors, ticks).
    """

    detections: list[Observed]
    meter: Meter
    stats: PipelineStats
    spans: int
    requests: int
    wall_s: float
    cpu_share: float
    cpu_s: float


async def replay(
    dataset: Dataset,
    rules: Sequence[Rule],
    detectors: Sequence[Detector],
    *,
    tick_ms: int = 100,
    tail_s: float = 1_800.0,
    cycle_requests: int = 1,
) -> ReplayResult:
    """Replay the dataset through a pipeline.

    Args:
        dataset: The stream.
        rules: Graph rules under test.
        detectors: Streaming detectors under test.
        tick_ms: Virtual interval between detector ticks.
        tail_s: Virtual seconds ticked after the last request (overdue steps, closing windows).
        cycle_requests: Requests offered before waiting for the pipeline (1: a cycle per
            request, as under light load; more: larger cycles, as under load).

    Returns:
        Detections, delays, timings.
    """
    clock = VirtualClock(dataset.start_ns)
    meter = Meter()
    timed_rules = [TimedRule(rule, clock, meter) for rule in rules]
    timed = [TimedDetector(detector, clock, meter) for detector in detectors]
    arrivals: dict[str, tuple[int, int]] = {}  # span id -> (wall offer, virtual export)
    emitted: list[tuple[Detection, int]] = []

    def listener(detection: Detection) -> None:
        emitted.append((detection, time.perf_counter_ns()))

    store = MemoryStore()
    await store.open()
    builder = GraphBuilder(clock=clock.seconds)
    pipeline = Pipeline(
        store,
        builder=builder,
        rules=timed_rules,
        detectors=timed,
        on_detection=listener,
        max_batches=64,
    )
    tick_ns = tick_ms * 1_000_000
    next_tick = dataset.start_ns + tick_ns
    started = time.perf_counter()
    cpu_started = time.process_time()
    spans = 0

    def advance(to_ns: int) -> None:
        nonlocal next_tick
        while next_tick <= to_ns:
            clock.now_ns = next_tick
            meter.ticks += 1
            for detector in timed:
                detector.advance(next_tick)
            next_tick += tick_ns

    async with pipeline:
        for index, batch in enumerate(dataset.batches, 1):
            advance(batch.export_ns)
            clock.now_ns = batch.export_ns
            offered = (time.perf_counter_ns(), batch.export_ns)
            for span in batch.spans:
                arrivals[span.span_id] = offered
            while not pipeline.offer(batch.spans):
                await pipeline.drain()
            spans += len(batch.spans)
            if index % cycle_requests == 0:
                await pipeline.drain()
        await pipeline.drain()
        end = dataset.end_ns + int(tail_s * 1e9)
        step = 1_000_000_000
        at = dataset.end_ns
        while at < end:
            at = min(end, at + step)
            advance(at)
            clock.now_ns = at
            if any(detector.pending for detector in timed):
                await asyncio.sleep(0.06)  # the pipeline's ticker collects them
        await asyncio.sleep(0.12)
        await pipeline.drain()
        stats = pipeline.stats
    wall_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    cpu_share = cpu_s / wall_s if wall_s > 0 else 1.0
    await store.close()
    observed: list[Observed] = []
    for detection, at_ns in emitted:
        produced = meter.produced.get(detection.id, (clock.now_ns, at_ns, "span"))
        evidence = list(detection.span_ids)
        run = dataset.runs.get(dataset.traces.get(detection.trace_id, ""))
        if run is not None and run.fault is not None and run.fault.type == detection.type:
            evidence.append(run.fault.span_id)  # when its own spans are unknown: the truth's
        delay = _delay_ms(evidence, arrivals, at_ns, produced)
        observed.append(Observed(detection, produced[0], produced[2], delay))
    return ReplayResult(
        observed, meter, stats, spans, len(dataset.batches), wall_s, cpu_share, cpu_s
    )


def _delay_ms(
    evidence: list[str],
    arrivals: dict[str, tuple[int, int]],
    emitted_ns: int,
    produced: tuple[int, int, str],
) -> float | None:
    """Real-time delay of a detection (see the module docstring)."""
    virtual_ns, produced_ns, source = produced
    if source == "tick":
        return (emitted_ns - produced_ns) / 1e6
    known = [arrivals[s] for s in evidence if s in arrivals]
    known = [a for a in known if a[0] <= emitted_ns and a[1] <= virtual_ns]
    if not known:
        return None
    offered_ns, export_ns = max(known, key=lambda a: (a[1], a[0]))
    if export_ns == virtual_ns:
        return (emitted_ns - offered_ns) / 1e6
    return (virtual_ns - export_ns) / 1e6 + (emitted_ns - produced_ns) / 1e6
