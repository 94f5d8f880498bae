"""The recovery engine's run controls: stop or warn by policy, last good checkpoint, TTL.

End to end through a real pipeline (graph rule → detection → control document), then each
rule of the engine with detections built by hand.
"""

from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from agentmesh.collector import Detection, HandoffLoopRule, MemoryStore, Pipeline, SpanRecord
from agentmesh.collector.graph.node import graph_node
from agentmesh.collector.recovery import (
    CheckpointIndex,
    MemoryControlState,
    RecoveryEngine,
    RecoveryPolicy,
    RunControl,
)
from agentmesh.collector.testing import ManualClock, SpanFactory, cycle_of, with_attributes
from agentmesh.core import semconv

T0 = 1_800_000_000.0
Engine = tuple[RecoveryEngine, ManualClock[float]]
"""The engine under test and the clock it reads."""


def _handoff(
    f: SpanFactory, root: SpanRecord, source: str, target: str, ckpt: str | None
) -> SpanRecord:
    span = f.agent(target, parent=root, handoff_from=source)
    if ckpt is None:
        return span
    return with_attributes(span, {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: ckpt})


def _looping_run(run_id: str = "run-7") -> tuple[SpanFactory, list[SpanRecord]]:
    """planner → writer (ckpt-0), then a → b → c repeated 4 times, every handoff checkpointed."""
    f = SpanFactory()
    root = f.workflow("w", run_id=run_id)
    spans = [
        root,
        f.agent("planner", parent=root),
        _handoff(f, root, "planner", "writer", "ckpt-0"),
    ]
    previous = "writer"
    for i, name in enumerate(["a", "b", "c"] * 4):
        spans.append(_handoff(f, root, previous, name, f"ckpt-{i + 1}"))
        previous = name
    return f, spans


async def test_a_loop_in_a_real_pipeline_stops_its_run_at_the_last_good_checkpoint() -> None:
    control = MemoryControlState()
    async with RecoveryEngine(control, expire_interval_seconds=3600) as engine:
        found: list[Detection] = []

        async def listener(detection: Detection) -> None:
            found.append(detection)
            await engine.on_detection(detection)

        async with Pipeline(
            MemoryStore(),
            rules=[HandoffLoopRule(max_repeats=3)],
            detectors=[engine.observer],
            on_detection=listener,
        ) as pipeline:
            _, spans = _looping_run()
            for span in spans:  # one span per batch: the rule fires mid-run, as in production
                assert pipeline.offer([span])
            await pipeline.drain()
        (loop,) = found
        run = control.current.runs["run-7"]
        by_id = {span.span_id: span for span in spans}
        first_failed = min(by_id[s].start_ns for s in loop.span_ids)
        # The handoff into the loop's first step (writer → a) recorded the state the loop began
        # from: the last good one; handoffs inside the loop are not.
        good = [
            s.attributes[semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID]
            for s in spans
            if semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID in s.attributes
            and s.start_ns <= first_failed
        ]
        assert good == ["ckpt-0", "ckpt-1"]  # the run has checkpoints up to the loop's start
        assert run == RunControl(
            "stop", loop.id, "handoff_loop", loop.explanation, str(good[-1]), run.at
        )
        (action,) = engine.actions
        assert (action.kind, action.run_id, action.detection_id) == ("stop_run", "run-7", loop.id)
        assert action.resume_checkpoint_id == good[-1]


def _detection(
    detection_type: str,
    *,
    run_id: str = "run-1",
    trace_id: str = "t" * 32,
    span_ids: tuple[str, ...] = (),
    detection_id: str | None = None,
) -> Detection:
    return Detection(
        detection_id or f"det-{detection_type}-{run_id}",
        detection_type,
        "error",
        trace_id,
        run_id,
        None,
        span_ids,
        f"{detection_type} seen",
        0,
    )


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    clock = ManualClock(T0)
    policy = RecoveryPolicy.parse("stuck=warn,latency_spike=none", run_ttl_seconds=100)
    async with RecoveryEngine(
        MemoryControlState(), policy, clock=clock, expire_interval_seconds=3600
    ) as recovery:
        yield recovery, clock


@pytest.mark.parametrize(
    ("detection_type", "action", "kind"),
    [
        ("handoff_loop", "stop", "stop_run"),
        ("ping_pong", "stop", "stop_run"),
        ("tool_loop", "stop", "stop_run"),
        ("runaway", "stop", "stop_run"),
        ("stuck", "warn", "warn_run"),
        ("context_loss", "warn", "warn_run"),
    ],
)
async def test_policy_lists_the_run(
    engine: Engine, detection_type: str, action: str, kind: str
) -> None:
    recovery, _ = engine
    detection = _detection(detection_type)
    with capture_logs() as logs:
        (taken,) = await recovery.apply(detection)
    assert taken.kind == kind
    run = recovery.control.current.runs["run-1"]
    assert (run.action, run.type, run.detection_id, run.at) == (
        action,
        detection_type,
        detection.id,
        T0,
    )
    assert run.explanation == f"{detection_type} seen"
    assert run.resume_checkpoint_id is None  # the engine never saw the run's spans
    (logged,) = [e for e in logs if e["event"] == "recovery action"]
    assert logged["log_level"] == "info"
    assert (logged["kind"], logged["run_id"], logged["detection_id"]) == (
        kind,
        "run-1",
        detection.id,
    )


async def test_none_takes_no_action(engine: Engine) -> None:
    recovery, _ = engine
    assert await recovery.apply(_detection("latency_spike")) == []
    assert await recovery.apply(_detection("not_a_known_type")) == []
    assert recovery.control.current.version == 0
    assert recovery.actions == ()


async def test_a_stop_is_not_downgraded_but_a_warning_is_upgraded(
    engine: Engine,
) -> None:
    recovery, _ = engine
    await recovery.apply(_detection("stuck"))
    assert recovery.control.current.runs["run-1"].action == "warn"
    await recovery.apply(_detection("tool_loop"))
    assert recovery.control.current.runs["run-1"].type == "tool_loop"
    version = recovery.control.current.version
    assert await recovery.apply(_detection("stuck", detection_id="det-later")) == []
    assert await recovery.apply(_detection("runaway")) == []
    assert recovery.control.current.version == version
    assert recovery.control.current.runs["run-1"].type == "tool_loop"


async def test_runs_leave_the_document_after_their_ttl(
    engine: Engine,
) -> None:
    recovery, clock = engine
    await recovery.apply(_detection("ping_pong", run_id="old"))
    clock.now = T0 + 50
    await recovery.apply(_detection("ping_pong", run_id="new"))
    clock.now = T0 + 99.9
    assert await recovery.expire() == []
    clock.now = T0 + 100
    (expired,) = await recovery.expire()
    assert (expired.kind, expired.run_id) == ("expire_run", "old")
    assert set(recovery.control.current.runs) == {"new"}
    clock.now = T0 + 150
    await recovery.expire()
    assert recovery.control.current.runs == {}


async def test_the_resume_checkpoint_is_the_last_before_the_failure(
    engine: Engine,
) -> None:
    recovery, _ = engine
    f, spans = _looping_run("run-2")
    stuck_step = f.agent("slow", parent=spans[0])
    marker = f.marker(stuck_step)  # the step never ended: only its start marker arrived
    recovery.observer.observe(cycle_of([*spans, marker]))
    # stuck names the step that never ended: every handoff before it is good
    await recovery.apply(
        _detection("stuck", run_id="run-2", trace_id=f.trace_id, span_ids=(stuck_step.span_id,))
    )
    assert recovery.control.current.runs["run-2"].resume_checkpoint_id == "ckpt-12"
    # a loop naming handoffs 5..12: the last good one is 4
    await recovery.apply(
        _detection(
            "handoff_loop",
            run_id="run-2",
            trace_id=f.trace_id,
            span_ids=tuple(s.span_id for s in spans[7:]),
        )
    )
    assert recovery.control.current.runs["run-2"].resume_checkpoint_id == "ckpt-4"


def test_checkpoint_index_forgets_the_oldest_traces() -> None:
    index = CheckpointIndex(max_traces=2, max_per_trace=2)
    runs = [_looping_run(f"r{i}") for i in range(3)]
    for _f, spans in runs:
        index.observe([graph_node(s) for s in spans])
    assert len(index) == 2
    assert index.last_good(runs[0][0].trace_id) is None
    assert index.last_good(runs[2][0].trace_id) == "ckpt-12"
    # only the two latest checkpoints are kept per trace
    assert index.last_good(runs[2][0].trace_id, (spans_id := runs[2][1][-1].span_id,)) == "ckpt-11"
    assert index.last_good(runs[2][0].trace_id, (runs[2][1][-2].span_id, spans_id)) is None
