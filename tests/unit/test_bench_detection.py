"""Tests of ``bench/detection_eval.py``'s generator, replay and scorer.

The generator must be deterministic for a seed, export children before their parents (as an
OpenTelemetry batch processor does), and record ground truth for every fault type; the scorer
is checked against figures computed by hand; the replay is run through the real pipeline with a
small detector written here, to check that detectors see virtual time and that detections are
collected with their delays.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from agentmesh.collector.detection import Detection, detection_id
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.model import SpanRecord
from agentmesh.core import semconv

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from _detection.detectors import build_detectors, stand_ins  # noqa: E402
from _detection.generate import EPOCH_NS, Dataset, Scenario, generate  # noqa: E402
from _detection.replay import Observed, replay  # noqa: E402
from _detection.runsim import STEP_START  # noqa: E402
from _detection.score import percentile, score  # noqa: E402
from _detection.truth import CROSS_RUN_TYPES, PER_RUN_TYPES, Episode, Fault, RunTruth  # noqa: E402

SMALL = Scenario(
    seed=11,
    runs=300,
    faults_per_type=1,
    episodes_per_type=1,
    warmup_s=10.0,
    tail_s=10.0,
)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(SMALL)


def _fingerprint(data: Dataset) -> str:
    h = hashlib.sha256()
    for batch in data.batches:
        h.update(f"{batch.export_ns}|{batch.service}".encode())
        for span in batch.spans:
            h.update(f"{span.trace_id}{span.span_id}{span.start_ns}{span.end_ns}".encode())
            h.update(repr(sorted(span.attributes.items())).encode())
    return h.hexdigest()


def _spans(data: Dataset) -> list[tuple[int, SpanRecord]]:
    return [(batch.export_ns, span) for batch in data.batches for span in batch.spans]


def test_same_seed_same_stream_other_seed_other_stream(dataset: Dataset) -> None:
    again = generate(SMALL)
    assert _fingerprint(again) == _fingerprint(dataset)
    assert {r.fault for r in again.runs.values()} == {r.fault for r in dataset.runs.values()}
    other = generate(replace(SMALL, seed=12))
    assert _fingerprint(other) != _fingerprint(dataset)


def test_children_end_and_are_exported_before_their_parents(dataset: Dataset) -> None:
    spans = _spans(dataset)
    by_id = {span.span_id: (export, span) for export, span in spans}
    checked = markers = 0
    for export, span in spans:
        if span.parent_span_id is None or span.parent_span_id not in by_id:
            continue
        parent_export, parent = by_id[span.parent_span_id]
        assert span.trace_id == parent.trace_id
        if span.name == STEP_START:  # a start marker: exported when its step starts
            markers += 1
            assert span.start_ns == span.end_ns == parent.start_ns
            assert span.str_attr(semconv.AGENTMESH_STEP_STARTED) == parent.span_id
            assert span.operation is None
        else:
            checked += 1
            assert parent.start_ns <= span.start_ns <= span.end_ns <= parent.end_ns
        assert export <= parent_export
    assert checked > 1000
    assert markers > 1000
    exports = [batch.export_ns for batch in dataset.batches]
    assert exports == sorted(exports)
    assert all(len(batch.spans) <= 512 for batch in dataset.batches)


def test_every_fault_type_has_ground_truth_at_a_real_span(dataset: Dataset) -> None:
    spans = {span.span_id: span for _, span in _spans(dataset)}
    faults: dict[str, Fault] = {}
    for run in dataset.runs.values():
        if run.fault is not None:
            faults[run.fault.type] = run.fault
            assert run.fault.run_id == run.run_id
            assert run.fault.trace_id == run.trace_id
            assert run.fault.span_id in spans
            assert spans[run.fault.span_id].trace_id == run.trace_id
    assert set(faults) == set(PER_RUN_TYPES)
    stuck = spans[faults["stuck"].span_id]
    assert stuck.name == STEP_START  # detectable by its marker: the step does not end in time
    step = spans.get(stuck.str_attr(semconv.AGENTMESH_STEP_STARTED) or "")
    assert step is None or step.end_ns - step.start_ns > 10 * 60 * 1_000_000_000
    lost = spans[faults["context_loss"].span_id]
    assert lost.str_attr(semconv.AGENTMESH_HANDOFF_RECEIVED_DIGEST) != lost.str_attr(
        semconv.AGENTMESH_HANDOFF_CONTEXT_DIGEST
    )
    loop = spans[faults["tool_loop"].span_id]
    assert loop.operation == semconv.Operation.EXECUTE_TOOL
    assert {e.type for e in dataset.episodes} == set(CROSS_RUN_TYPES)
    for episode in dataset.episodes:
        assert episode.calls > 0
        assert episode.failed_calls + (episode.slowdown > 1) > 0
        assert any(episode.id in run.episodes for run in dataset.runs.values())
    assert sum(1 for run in dataset.runs.values() if run.clean) > 100


def test_noise_is_present_in_clean_runs(dataset: Dataset) -> None:
    noise: set[str] = set()
    for run in dataset.runs.values():
        if run.clean:
            noise |= run.noise
    assert {"retried_call", "status_polls", "tool_error_handled", "parallel_calls"} <= noise


# --- scorer -------------------------------------------------------------------------------


def _run(run_id: str, fault: str | None = None, episodes: set[str] | None = None) -> RunTruth:
    truth = RunTruth(run_id, f"t-{run_id}", "w", EPOCH_NS, planned=fault)
    if fault is not None:
        truth.fault = Fault(fault, run_id, f"t-{run_id}", "s", EPOCH_NS, "")
    truth.episodes = episodes or set()
    return truth


def _observed(
    type_: str,
    run_id: str,
    *,
    at_s: float = 0.0,
    delay: float | None = 1.0,
    details: Mapping[str, str] | None = None,
) -> Observed:
    trace = f"t-{run_id}"
    detection = Detection(
        id=detection_id(type_, trace, f"{at_s}"),
        type=type_,
        severity="warning",
        trace_id=trace,
        run_id=run_id,
        agent=None,
        span_ids=(),
        explanation="",
        detected_at_ns=0,
        details=dict(details or {}),
    )
    return Observed(detection, EPOCH_NS + int(at_s * 1e9), "span", delay)


def _hand_dataset() -> Dataset:
    runs = [
        _run("r1", "tool_loop"),
        _run("r2", "tool_loop"),
        _run("r3"),
        _run("r4"),
        _run("r5", "token_spike"),
        _run("r6"),
        _run("r7", episodes={"ep-0"}),
    ]
    storm = Episode(
        "ep-0",
        "rate_limit_storm",
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
        EPOCH_NS + 100 * 10**9,
        EPOCH_NS + 200 * 10**9,
        0.6,
        1.0,
    )
    return Dataset(
        scenario=SMALL,
        batches=[],
        runs={r.run_id: r for r in runs},
        traces={r.trace_id: r.run_id for r in runs},
        episodes=[storm],
        span_count=0,
        start_ns=EPOCH_NS,
        end_ns=EPOCH_NS,
    )


def test_scorer_matches_hand_computed_figures() -> None:
    data = _hand_dataset()
    observed = [
        _observed("tool_loop", "r1", delay=4.0),  # TP
        _observed("tool_loop", "r1", at_s=1, delay=99.0),  # the same pair again: not counted
        _observed("tool_loop", "r3"),  # FP, flags clean r3
        _observed("cost_spike", "r5"),  # tolerated on a token spike
        _observed("runaway", "r4"),  # FP, flags clean r4
        _observed("error_cascade", "r7"),  # tolerated: r7 felt the storm
        _observed(
            "rate_limit_storm", "r7", at_s=150, delay=2.0, details={"model": "gpt-4o-2024-08-06"}
        ),
        _observed("rate_limit_storm", "r6", at_s=500, details={"model": "gpt-4o"}),  # no episode
        _observed("provider_recovered", "r7"),  # not a contract type
    ]
    result = score(data, observed)
    loop = result.per_type["tool_loop"]
    assert (loop.tp, loop.fp, loop.fn) == (1, 1, 1)
    assert loop.precision == pytest.approx(0.5)
    assert loop.recall == pytest.approx(0.5)
    assert loop.f1 == pytest.approx(0.5)
    assert loop.delays_ms == (4.0,)
    assert loop.missed == ("r2",)
    assert [o.detection.run_id for o in loop.false_positives] == ["r3"]
    assert result.per_type["cost_spike"].fp == 0
    assert result.per_type["error_cascade"].fp == 0
    runaway = result.per_type["runaway"]
    assert (runaway.tp, runaway.fp, runaway.fn, runaway.f1) == (0, 1, 0, 0.0)
    token = result.per_type["token_spike"]
    assert (token.tp, token.fp, token.fn, token.recall) == (0, 0, 1, 0.0)
    storm = result.per_type["rate_limit_storm"]
    assert (storm.tp, storm.fp, storm.fn) == (1, 1, 0)
    assert storm.precision == pytest.approx(0.5)
    assert storm.recall == pytest.approx(1.0)
    assert storm.f1 == pytest.approx(2 / 3)
    assert storm.missed == ()
    assert [o.virtual_ns for o in storm.false_positives] == [EPOCH_NS + 500 * 10**9]
    # clean runs: r3, r4, r6; r3 and r4 flagged, r6 only by an unmatched storm detection
    assert result.clean_runs == 3
    assert result.clean_flagged == 3
    assert result.clean_runs_flagged == pytest.approx(1.0)
    assert result.other_types == {"provider_recovered": 1}
    assert sorted(result.delays_ms) == [2.0, 4.0]
    assert result.macro_f1 == pytest.approx((0.5 + 2 / 3) / 12)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) is None


# --- replay ---------------------------------------------------------------------------------


class _ContextCheck:
    """A small real detector: flags handoffs whose received digest differs from the sent one,
    and records the times it is given."""

    def __init__(self) -> None:
        self.cycle_times: list[int] = []
        self.tick_times: list[int] = []

    @property
    def name(self) -> str:
        return "context-check"

    def observe(self, cycle: CycleView) -> list[Detection]:
        self.cycle_times.append(cycle.now_ns)
        found: list[Detection] = []
        for node in cycle.nodes:
            handoff = node.handoff
            if handoff is None or node.received_digest is None:
                continue
            if node.received_digest != handoff.digest:
                found.append(
                    Detection(
                        id=detection_id("context_loss", node.trace_id, node.span_id),
                        type="context_loss",
                        severity="error",
                        trace_id=node.trace_id,
                        run_id=node.run_id or node.trace_id,
                        agent=node.agent,
                        span_ids=(node.span_id,),
                        explanation="context lost",
                        detected_at_ns=cycle.now_ns,
                    )
                )
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        self.tick_times.append(now_ns)
        return []


async def test_replay_feeds_virtual_time_and_collects_detections(dataset: Dataset) -> None:
    check = _ContextCheck()
    result = await replay(dataset, [], [check], tail_s=2.0)
    assert result.spans == dataset.span_count
    assert result.requests == len(dataset.batches)
    # observe() sees each request's virtual export time, never the wall clock
    assert check.cycle_times == sorted(check.cycle_times)
    exports = {batch.export_ns for batch in dataset.batches}
    assert set(check.cycle_times) <= exports
    assert len(check.cycle_times) == len(dataset.batches)
    # ticks follow virtual time in 100 ms steps, up to 2 s past the last request
    assert check.tick_times[0] == EPOCH_NS + 100_000_000
    steps = {b - a for a, b in zip(check.tick_times, check.tick_times[1:], strict=False)}
    assert steps == {100_000_000}
    assert check.tick_times[-1] >= dataset.end_ns + 1_900_000_000
    found = [o for o in result.detections if o.detection.type == "context_loss"]
    truth = [r for r in dataset.runs.values() if r.fault and r.fault.type == "context_loss"]
    assert {o.detection.trace_id for o in found} >= {r.trace_id for r in truth}
    assert all(o.delay_ms is not None and o.delay_ms >= 0 for o in found)
    assert all(o.source == "span" for o in found)
    figures = score(dataset, result.detections)
    assert figures.per_type["context_loss"].recall == 1.0
    assert result.meter.observe_ns["_ContextCheck"] > 0


async def test_stand_ins_keep_names_and_find_nothing(dataset: Dataset) -> None:
    rules, detectors = build_detectors()
    null_rules, null_detectors = stand_ins(rules, detectors)
    assert [r.name for r in null_rules] == [r.name for r in rules]
    assert [d.name for d in null_detectors] == [d.name for d in detectors]
    baseline = await replay(dataset, null_rules, null_detectors, tail_s=2.0)
    assert baseline.detections == []
    assert baseline.cpu_s > 0
    real = await replay(dataset, rules, detectors, tail_s=2.0)
    assert real.detections  # the real set finds the injected faults the stand-ins cannot
