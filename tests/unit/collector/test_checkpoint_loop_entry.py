"""The resume checkpoint of a loop is the state the loop began from.

A handoff's checkpoint is the state its receiving step *started from*. In ``planner →
supervisor ↔ researcher ↔ …`` the planner → supervisor handoff records the state after the
planner, before the loop: the last good state, though the supervisor's span is the first step
the ping-pong names. Handoffs inside the loop are not good; a detection naming one agent's
steps (a stuck step, a lost handoff) still resumes from the handoff before it.
"""

from agentmesh.collector import Detection, MemoryStore, PingPongRule, Pipeline, SpanRecord
from agentmesh.collector.graph.node import graph_node
from agentmesh.collector.recovery import CheckpointIndex, MemoryControlState, RecoveryEngine
from agentmesh.collector.resume import resume_plan
from agentmesh.collector.testing import SpanFactory, failed, with_attributes
from agentmesh.core import semconv


def _step(
    f: SpanFactory, root: SpanRecord, agent: str, source: str | None, ckpt: str | None
) -> SpanRecord:
    span = f.agent(agent, parent=root, run_id="run-pp", handoff_from=source)
    if ckpt is None:
        return span
    return with_attributes(span, {semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID: ckpt})


def _ping_pong_run() -> tuple[SpanFactory, list[SpanRecord]]:
    """planner (entered from START: no handoff), then supervisor ↔ researcher 5 times; every
    handoff checkpointed, as LangGraph with InMemorySaver records it."""
    f = SpanFactory()
    root = with_attributes(
        f.workflow("pingpong_graph", run_id="run-pp", framework="langgraph"),
        {semconv.GEN_AI_CONVERSATION_ID: "t1"},
    )
    spans = [root, _step(f, root, "planner", None, None)]
    previous = "planner"
    for n, agent in enumerate(["supervisor", "researcher"] * 5):
        spans.append(_step(f, root, agent, previous, f"ck-{n}-{previous}-to-{agent}"))
        previous = agent
    return f, spans


async def _stopped(spans: list[SpanRecord]) -> tuple[Detection, str | None]:
    found: list[Detection] = []
    control = MemoryControlState()
    async with RecoveryEngine(control, expire_interval_seconds=3600) as engine:

        async def listener(detection: Detection) -> None:
            found.append(detection)
            await engine.on_detection(detection)

        async with Pipeline(
            MemoryStore(),
            rules=[PingPongRule(max_repeats=3, settle_seconds=0)],
            detectors=[engine.observer],
            on_detection=listener,
        ) as pipeline:
            for span in spans:  # one span per batch: the rule fires mid-run, as live
                assert pipeline.offer([span])
            await pipeline.drain()
    (detection,) = found
    return detection, control.current.runs["run-pp"].resume_checkpoint_id


async def test_a_stopped_ping_pong_resumes_from_the_state_before_the_loop() -> None:
    _, spans = _ping_pong_run()
    detection, resume = await _stopped(spans)
    assert detection.type == "ping_pong"
    first = next(s for s in spans if s.span_id == detection.span_ids[0])
    assert first.attributes[semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "planner"
    assert resume == "ck-0-planner-to-supervisor"


async def test_the_resume_plan_names_the_same_checkpoint_and_step() -> None:
    # What `agentmesh resume RUN` and GET /v1/runs/{run}/resume answer.
    _, spans = _ping_pong_run()
    detection, resume = await _stopped(spans)
    plan = resume_plan(spans, [detection])
    assert plan is not None
    assert (plan.status, plan.checkpoint_id, plan.resume_from, plan.thread_id) == (
        "stopped",
        resume,
        "supervisor",
        "t1",
    )


def _index(spans: list[SpanRecord]) -> CheckpointIndex:
    index = CheckpointIndex()
    index.observe([graph_node(s) for s in spans])
    return index


def test_a_loop_found_mid_way_does_not_resume_inside_it() -> None:
    # The named steps start at a visit entered from one of the loop's own agents.
    f, spans = _ping_pong_run()
    loop = spans[4:]  # supervisor (from researcher), researcher, …
    assert loop[0].attributes[semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME] == "researcher"
    good = _index(spans).last_good(f.trace_id, [s.span_id for s in loop])
    assert good == "ck-1-supervisor-to-researcher"  # the handoff before the first named step


def test_one_agents_step_resumes_from_the_handoff_before_it() -> None:
    # A stuck researcher, a handoff that lost context: where the failure came from is unknown.
    f, spans = _ping_pong_run()
    researcher = spans[3]
    assert _index(spans).last_good(f.trace_id, [researcher.span_id]) == (
        "ck-0-planner-to-supervisor"
    )


def test_a_cascade_resumes_from_the_state_its_first_failing_agent_started_from() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="run-c")
    planner = f.agent("planner", parent=root)
    fetcher = _step(f, root, "fetcher", "planner", "ck-fetcher")
    analyst = _step(f, root, "analyst", "fetcher", "ck-analyst")
    spans = [root, planner, failed(fetcher), failed(analyst)]
    good = _index(spans).last_good(f.trace_id, [fetcher.span_id, analyst.span_id])
    assert good == "ck-fetcher"


def test_a_handoff_from_a_step_the_index_does_not_know_is_not_trusted() -> None:
    # The planner's span was forgotten (or never came): the handoff may be anything.
    f, spans = _ping_pong_run()
    without_planner = [s for s in spans if s is not spans[1]]
    loop = [s.span_id for s in spans[2:]]
    assert _index(without_planner).last_good(f.trace_id, loop) is None
