"""Where a failed or stopped run resumes: :class:`ResumePlan` and :func:`resume_plan`.

A run is resumed from its *last good handoff*: the latest checkpointed handoff that began no
later than the step where the run went wrong.

- A run the collector stopped (a detection whose policy is ``stop``: loops, ping-pong,
  runaway) resumes from the state before the loop, as the recovery engine chose when it stopped
  the run: the handoff into the loop's first step when an agent outside the loop made it, else
  the last checkpointed handoff before the steps the detection names (resuming inside the loop
  would loop again).
- A run that failed (an agent, node or tool step ended in error: a provider outage, a tool
  crash) resumes from the checkpoint its failing step started from: that handoff arrived whole,
  the work after it did not finish. The failing step is the failed step that ended last (a step
  that failed earlier and was retried is done). A detected context loss at that handoff moves
  the resume point one handoff back.

The plan names the framework, the thread (LangGraph ``thread_id``, from
``gen_ai.conversation.id``) and the checkpoint, so the app (or ``agentmesh resume``) can
continue the run where it broke without repeating the completed steps; and where that checkpoint
is stored (``agentmesh.handoff.checkpoint.store_url`` of its handoff span, else of the workflow
span: a masked URL), so ``agentmesh resume`` can check the store before it runs the app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Final

from agentmesh.collector.detection import Detection
from agentmesh.collector.graph.failure import (
    STEP_OPERATIONS,
    failed_step,
    failed_tool,
    inner_tool,
    later_failure,
    step_failure,
    step_name,
)
from agentmesh.collector.graph.interruption import interruption_of
from agentmesh.collector.graph.node import GraphNode, graph_node
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.recovery.checkpoints import CheckpointIndex
from agentmesh.collector.recovery.policy import RecoveryPolicy
from agentmesh.core import semconv

__all__ = ["ResumePlan", "resume_plan"]

_CONTEXT_LOSS: Final = "context_loss"


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """How to continue a run.

    Attributes:
        run_id: The run to resume.
        trace_id: Its trace.
        framework: ``langgraph`` or ``crewai`` (``agentmesh.framework`` of its workflow), when
            known.
        workflow_name: The workflow (graph or crew) name, when known.
        thread_id: The LangGraph thread (``gen_ai.conversation.id``), when the run had one.
        checkpoint_id: The checkpoint to resume from; ``None`` when the run has no checkpointed
            handoff before the failure (it can only be started over).
        checkpoint_ns: The checkpoint namespace of that handoff (``""`` for the root graph).
        resume_from: The step (agent or node) the resumed run starts with, when known.
        reason: Why the run needs resuming: the detection that stopped it, or the step error.
        status: ``failed``, ``stopped``, ``interrupted`` (Ctrl-C, a cancelled task: the run
            did not fail, its work did not finish) or ``completed`` (a completed run needs no
            resume; its plan still names its last checkpoint).
        resumed_by: The latest run that already continues this one, when there is one:
            resuming again would run its work a second time.
        checkpoint_store: Where the run's checkpoints are stored: the store's URL, password
            masked (``memory://``: in the memory of the process that ran it, gone with it;
            ``duckdb:///path``, ``redis://…``, ``postgresql://…``); ``None`` when the spans do
            not say (older instrumentation, or a checkpointer AgentMesh does not know).
    """

    run_id: str
    trace_id: str
    framework: str | None
    workflow_name: str | None
    thread_id: str | None
    checkpoint_id: str | None
    checkpoint_ns: str
    resume_from: str | None
    reason: str
    status: str
    resumed_by: str | None = None
    checkpoint_store: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """The plan as a JSON object (what ``GET /v1/runs/{run}/resume`` answers).

        Returns:
            The plan's fields by name.
        """
        return asdict(self)


def resume_plan(
    spans: Sequence[SpanRecord],
    detections: Iterable[Detection],
    *,
    policy: RecoveryPolicy | None = None,
) -> ResumePlan | None:
    """Work out where a run resumes from its stored spans and detections.

    Args:
        spans: The run's spans (one trace), any order.
        detections: The trace's detections.
        policy: Which detection types stop a run (the defaults when ``None``).

    Returns:
        The plan, or ``None`` when ``spans`` is empty.
    """
    if not spans:
        return None
    policy = policy or RecoveryPolicy()
    nodes = sorted((graph_node(span) for span in spans), key=lambda n: (n.start_ns, n.span_id))
    trace_id = nodes[0].trace_id
    index = CheckpointIndex(max_per_trace=1 << 20)
    index.observe(nodes)
    by_span = {node.span_id: node for node in nodes}
    workflow = _workflow(spans)
    run_id = _run_id(spans, trace_id)
    found = list(detections)
    stops = [d for d in found if policy.action_for(d.type) == "stop"]
    losses = {span_id for d in found if d.type == _CONTEXT_LOSS for span_id in d.span_ids}
    checkpoints = [n for n in nodes if n.checkpoint_id is not None and n.handoff is not None]
    checkpoint_fallback: str | None = None
    if stops:
        first = min(stops, key=lambda d: d.detected_at_ns)
        checkpoint = index.last_good(trace_id, first.span_ids)
        node = _node_of(checkpoints, checkpoint)
        status, reason = "stopped", f"{first.type}: {first.explanation}"
    else:
        failed = _failed_step(nodes)
        interrupted: tuple[GraphNode | None, str] | None = None
        if failed is None:
            interrupted = _interruption(spans, by_span)
        if interrupted is not None and interrupted[0] is not None:
            failed = interrupted[0]  # resumes like a failed step: from where it started
        if failed is None:
            node = checkpoints[-1] if checkpoints else None
            if interrupted is not None:  # between steps: from the last checkpoint
                status, reason = "interrupted", f"the run was interrupted: {interrupted[1]}"
            else:
                status, reason = "completed", "the run completed"
        else:
            candidates = [
                n for n in checkpoints if n.start_ns <= failed.start_ns and n.span_id not in losses
            ]
            node = candidates[-1] if candidates else None
            if node is None:  # a resumed run that failed before its own first handoff
                checkpoint_fallback = _text(workflow, semconv.AGENTMESH_RESUME_CHECKPOINT_ID)
            if interrupted is not None:
                name = step_name(failed)
                status, reason = "interrupted", f"step {name!r} was interrupted: {interrupted[1]}"
            else:
                tools = [n for n in nodes if failed_tool(n)]
                status, reason = "failed", step_failure(failed, inner_tool(failed, tools, by_span))
        checkpoint = node.checkpoint_id if node is not None else checkpoint_fallback
    resume_span = by_span.get(node.span_id) if node is not None else None
    handoff = _span_of(spans, node)
    return ResumePlan(
        run_id=run_id,
        trace_id=trace_id,
        framework=_text(workflow, semconv.AGENTMESH_FRAMEWORK),
        workflow_name=_text(workflow, semconv.GEN_AI_WORKFLOW_NAME),
        thread_id=_text(workflow, semconv.GEN_AI_CONVERSATION_ID),
        checkpoint_id=checkpoint,
        checkpoint_ns=_namespace(spans, node),
        resume_from=resume_span.agent if resume_span is not None else None,
        reason=reason,
        status=status,
        checkpoint_store=_text(handoff, semconv.AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL)
        or _text(workflow, semconv.AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL),
    )


def _interruption(
    spans: Sequence[SpanRecord], by_span: Mapping[str, GraphNode]
) -> tuple[GraphNode | None, str] | None:
    """The step an interruption stopped, and the interruption, when the run was interrupted.

    An interrupted operation (Ctrl-C, a cancelled task, ``SystemExit``) ends its span without
    error status but with its exception as an event (the instrumentation's rule): the run did
    not fail, yet its work did not finish. The step named is chosen as a failed one is (the
    one that ended last); ``None`` when only the root span was interrupted, between steps.
    """
    named: GraphNode | None = None
    found: str | None = None
    for span in spans:
        kind = interruption_of(span)
        if kind is None:
            continue
        found = found or kind
        node = by_span.get(span.span_id)
        if node is None or node.operation not in STEP_OPERATIONS or node.started is not None:
            continue  # not a step: the root, a model call, a start marker
        if later_failure(named, node) is node:
            named, found = node, kind
    return None if found is None else (named, found)


def _failed_step(nodes: Sequence[GraphNode]) -> GraphNode | None:
    """The failed step the run's failure names: the one that ended last."""
    named: GraphNode | None = None
    for node in nodes:
        if failed_step(node):
            named = later_failure(named, node)
    return named


def _node_of(nodes: Sequence[GraphNode], checkpoint_id: str | None) -> GraphNode | None:
    if checkpoint_id is None:
        return None
    return next((n for n in reversed(nodes) if n.checkpoint_id == checkpoint_id), None)


def _workflow(spans: Sequence[SpanRecord]) -> SpanRecord | None:
    workflows = [
        s
        for s in spans
        if s.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.Operation.INVOKE_WORKFLOW
    ]
    return min(workflows, key=lambda s: s.start_ns) if workflows else None


def _run_id(spans: Sequence[SpanRecord], trace_id: str) -> str:
    for span in spans:
        value = span.attributes.get(semconv.AGENTMESH_RUN_ID)
        if isinstance(value, str) and value:
            return value
    return trace_id


def _span_of(spans: Sequence[SpanRecord], node: GraphNode | None) -> SpanRecord | None:
    if node is None:
        return None
    return next((span for span in spans if span.span_id == node.span_id), None)


def _namespace(spans: Sequence[SpanRecord], node: GraphNode | None) -> str:
    value = _text(_span_of(spans, node), semconv.AGENTMESH_LANGGRAPH_CHECKPOINT_NS)
    return value or ""


def _text(span: SpanRecord | None, key: str) -> str | None:
    if span is None:
        return None
    value = span.attributes.get(key)
    return value if isinstance(value, str) and value else None
