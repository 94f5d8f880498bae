"""What the graph builder keeps of one span: a small immutable tuple, cheap to ship.

:func:`graph_node` is computed where spans are decoded (in a decode worker process when the
collector runs them), so the process that builds graphs never needs the whole span. Both types
are named tuples: they pickle as plain tuples, compare by value (a re-delivered span equals
what is held), and tuples of atoms are untracked by the garbage collector.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from agentmesh.collector.graph.interruption import interruption_of
from agentmesh.collector.graph.sent_model import sent_model
from agentmesh.collector.model import SpanRecord, amount_of, count_of, float_of, int_of, str_of
from agentmesh.core import semconv

__all__ = ["GraphNode", "HandoffInfo", "RouteInfo", "graph_node"]

UNSPECIFIED_HANDOFF_KIND = "unspecified"


class HandoffInfo(NamedTuple):
    """A handoff recorded on an ``invoke_agent`` span.

    Attributes:
        source: The agent that handed off.
        target: The agent that received.
        kind: How (``command``, ``edge``, ``send``, ``delegation``…; ``unspecified``).
        digest: Digest of the context that crossed, when recorded.
        size: Size in bytes of that context, when recorded.
    """

    source: str
    target: str
    kind: str
    digest: str | None
    size: int | None


class RouteInfo(NamedTuple):
    """What the router needs of a span to learn from it.

    Attributes:
        decision_id: ``agentmesh.route.decision_id``.
        task_class: ``agentmesh.route.task_class`` (else the run's task class).
        cluster: The prompt cluster from ``agentmesh.route.features`` (0 when absent).
        feedback_score: ``agentmesh.feedback.score``, when the span carries one.
    """

    decision_id: str
    task_class: str | None
    cluster: int
    feedback_score: float | None


_CLUSTER = re.compile(r'"cluster":\s*(\d+)')


def _route_info(span: SpanRecord) -> RouteInfo | None:
    attributes = span.attributes
    decision = str_of(attributes, semconv.AGENTMESH_ROUTE_DECISION_ID)
    if decision is None:
        return None
    score = float_of(attributes, semconv.AGENTMESH_FEEDBACK_SCORE)
    features = str_of(attributes, semconv.AGENTMESH_ROUTE_FEATURES)
    found = _CLUSTER.search(features) if features else None
    if score is None and span.operation != semconv.Operation.CHAT:
        return None  # a child span carrying the decision id in baggage: not the decision
    return RouteInfo(
        decision,
        str_of(attributes, semconv.AGENTMESH_ROUTE_TASK_CLASS)
        or str_of(attributes, semconv.AGENTMESH_RUN_TASK_CLASS),
        int(found.group(1)) if found else 0,
        score,
    )


class GraphNode(NamedTuple):
    """What the graph needs of one span.

    Attributes:
        trace_id: The trace (32 hex digits).
        span_id: The span (16 hex digits).
        parent_id: The parent span, ``None`` for a root.
        start_ns: Start, Unix nanoseconds.
        end_ns: End, Unix nanoseconds.
        operation: ``gen_ai.operation.name``.
        agent: The agent name of an ``invoke_agent`` span (the step name of an
            ``invoke_node`` span).
        input_tokens: Input tokens of a ``chat`` span (0 otherwise).
        output_tokens: Output tokens of a ``chat`` span (0 otherwise).
        cost_usd: Cost of a ``chat`` span (0 otherwise).
        handoff: The handoff an ``invoke_agent`` span records.
        run_id: ``agentmesh.run.id``.
        workflow_name: ``gen_ai.workflow.name``.
        framework: ``agentmesh.framework``.
        service_name: The resource's ``service.name``.
        error: Whether the span's status is error.
        error_type: ``error.type`` (or the status message) of a failed span.
        http_status: ``http.response.status_code``, when recorded (429: rate limited).
        provider: ``gen_ai.provider.name`` of a model call.
        model: The model that answered a call (response model, else requested model).
        tool_name: ``gen_ai.tool.name`` of an ``execute_tool`` span.
        tool_args_digest: Digest of the tool call's arguments.
        tool_result_digest: Digest of the tool call's result.
        task_class: ``agentmesh.run.task_class``.
        budget_usd: ``agentmesh.run.budget_usd``, on the span that carries it.
        received_digest: Digest of the context an agent received at a handoff.
        checkpoint_id: Checkpoint taken at the handoff this span receives.
        started: On a start marker, the id of the step that started (the marker is not a
            step of the graph; see ``agentmesh.step.started``); ``None`` on every other span.
            A marker's ``agent`` / ``tool_name`` name that step.
        request_model: The model a call was sent to (``gen_ai.request.model``; the router's
            choice when it enforced one; after fallbacks, the model tried last, the one that
            answered or failed last): what applications and the router name, so breakers,
            provider-wide detectors and the router's outcomes key on it.
        failed_attempts: On a model call the router retried on another model, each failed
            attempt as ``(model, error.type, model tried next)`` (from
            ``agentmesh.route.fallback`` events): the span itself ends well, but those models
            failed.
        route: On a routed model call, the decision's id, task class and prompt cluster; on a
            feedback span, the decision it scores and the score.
        paused: ``agentmesh.run.paused`` is true: the run stopped here to wait for input (a
            LangGraph interrupt, CrewAI human feedback).
        resumed_from: ``agentmesh.resume.from_run_id``: the run this one continues.
        conversation_id: ``gen_ai.conversation.id``: the conversation (LangGraph thread,
            CrewAI flow state) the run belongs to.
        resumed: ``agentmesh.run.resumed`` (or ``agentmesh.langgraph.resumed``) is true: the
            run continues its conversation where the previous run left off.
        interrupted: On a root span whose operation was interrupted (Ctrl-C, a cancelled task,
            ``SystemExit``: no error status, the exception as an event), the interruption's
            class name; ``None`` on every other span.
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    operation: str | None
    agent: str | None
    input_tokens: int
    output_tokens: int
    cost_usd: float
    handoff: HandoffInfo | None
    run_id: str | None
    workflow_name: str | None
    framework: str | None
    service_name: str | None
    error: bool = False
    error_type: str | None = None
    http_status: int | None = None
    provider: str | None = None
    model: str | None = None
    tool_name: str | None = None
    tool_args_digest: str | None = None
    tool_result_digest: str | None = None
    task_class: str | None = None
    budget_usd: float | None = None
    received_digest: str | None = None
    checkpoint_id: str | None = None
    started: str | None = None
    failed_attempts: tuple[tuple[str, str | None, str | None], ...] = ()
    request_model: str | None = None
    route: RouteInfo | None = None
    paused: bool = False
    resumed_from: str | None = None
    conversation_id: str | None = None
    resumed: bool = False
    interrupted: str | None = None

    @property
    def duration_ns(self) -> int:
        """How long the span took (0 when its clock went backwards)."""
        return max(0, self.end_ns - self.start_ns)

    @property
    def rank(self) -> tuple[int, int, str]:
        """Which span's run-level attributes win: workflow span, then root, then earliest."""
        if self.operation == semconv.Operation.INVOKE_WORKFLOW:
            level = 0
        elif self.parent_id is None:
            level = 1
        else:
            level = 2
        return (level, self.start_ns, self.span_id)


def graph_node(span: SpanRecord) -> GraphNode:
    """Extract what the graph builder needs from a span.

    Args:
        span: A decoded (and normalised) span.

    Returns:
        Its graph node.
    """
    attributes = span.attributes  # read through str_of & co: one call per attribute, not two
    operation = str_of(attributes, semconv.GEN_AI_OPERATION_NAME)
    agent: str | None = None
    handoff: HandoffInfo | None = None
    received: str | None = None
    checkpoint: str | None = None
    if operation == semconv.Operation.INVOKE_AGENT or operation == semconv.Operation.INVOKE_NODE:
        # Workflow steps that are not agents (CrewAI flow methods) take part in the graph
        # like agents: they hand work to each other and can loop.
        if operation == semconv.Operation.INVOKE_AGENT:
            agent = str_of(attributes, semconv.GEN_AI_AGENT_NAME) or span.name
        else:
            agent = str_of(attributes, semconv.GEN_AI_NODE_NAME) or span.name
        source = str_of(attributes, semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME)
        if source is not None:
            handoff = HandoffInfo(
                source=source,
                target=str_of(attributes, semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME) or agent,
                kind=str_of(attributes, semconv.AGENTMESH_HANDOFF_KIND) or UNSPECIFIED_HANDOFF_KIND,
                digest=str_of(attributes, semconv.AGENTMESH_HANDOFF_CONTEXT_DIGEST),
                size=int_of(attributes, semconv.AGENTMESH_HANDOFF_CONTEXT_SIZE),
            )
            received = str_of(attributes, semconv.AGENTMESH_HANDOFF_RECEIVED_DIGEST)
            checkpoint = str_of(attributes, semconv.AGENTMESH_HANDOFF_CHECKPOINT_ID)
    provider = model = tool_name = args_digest = result_digest = requested = None
    attempts: tuple[tuple[str, str | None, str | None], ...] = ()
    if operation == semconv.Operation.CHAT:
        if span.events:
            attempts = _failed_attempts(span)
        input_tokens = count_of(attributes.get(semconv.GEN_AI_USAGE_INPUT_TOKENS))
        output_tokens = count_of(attributes.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS))
        cost_usd = amount_of(attributes.get(semconv.AGENTMESH_COST_USD))
        provider = str_of(attributes, semconv.GEN_AI_PROVIDER_NAME)
        enforced = str_of(attributes, semconv.AGENTMESH_ROUTE_MODE) == "enforce"
        requested = sent_model(
            str_of(attributes, semconv.GEN_AI_REQUEST_MODEL),
            str_of(attributes, semconv.AGENTMESH_ROUTE_CHOSEN) if enforced else None,
            attempts[-1][2] if attempts else None,
        )
        model = str_of(attributes, semconv.GEN_AI_RESPONSE_MODEL) or requested
    else:
        input_tokens = output_tokens = 0
        cost_usd = 0.0
        if operation == semconv.Operation.EXECUTE_TOOL:
            # without gen_ai.tool.name, the span's name says it: "execute_tool {tool name}"
            tool_name = str_of(attributes, semconv.GEN_AI_TOOL_NAME) or (
                span.name.removeprefix(f"{semconv.Operation.EXECUTE_TOOL} ") or span.name
            )
            args_digest = str_of(attributes, semconv.AGENTMESH_TOOL_ARGUMENTS_DIGEST)
            result_digest = str_of(attributes, semconv.AGENTMESH_TOOL_RESULT_DIGEST)
    started = str_of(attributes, semconv.AGENTMESH_STEP_STARTED)
    if started is not None:  # a start marker names the step that began
        agent = str_of(attributes, semconv.GEN_AI_AGENT_NAME) or str_of(
            attributes, semconv.GEN_AI_NODE_NAME
        )
        tool_name = str_of(attributes, semconv.GEN_AI_TOOL_NAME)
    error = span.status_code == "error"
    error_type = None
    http_status = None
    if error:
        error_type = str_of(attributes, semconv.ERROR_TYPE) or span.status_message or None
        http_status = int_of(attributes, semconv.HTTP_RESPONSE_STATUS_CODE)
    return GraphNode(
        span.trace_id,
        span.span_id,
        span.parent_span_id,
        span.start_ns,
        span.end_ns,
        operation,
        agent,
        input_tokens,
        output_tokens,
        cost_usd,
        handoff,
        str_of(attributes, semconv.AGENTMESH_RUN_ID),
        str_of(attributes, semconv.GEN_AI_WORKFLOW_NAME),
        str_of(attributes, semconv.AGENTMESH_FRAMEWORK),
        span.service_name,
        error,
        error_type,
        http_status,
        provider,
        model,
        tool_name,
        args_digest,
        result_digest,
        str_of(attributes, semconv.AGENTMESH_RUN_TASK_CLASS),
        float_of(attributes, semconv.AGENTMESH_RUN_BUDGET_USD),
        received,
        checkpoint,
        started,
        attempts,
        requested,
        _route_info(span) if attributes else None,
        attributes.get(semconv.AGENTMESH_RUN_PAUSED) is True,
        str_of(attributes, semconv.AGENTMESH_RESUME_FROM_RUN_ID),
        str_of(attributes, semconv.GEN_AI_CONVERSATION_ID),
        attributes.get(semconv.AGENTMESH_RUN_RESUMED) is True
        or attributes.get(semconv.AGENTMESH_LANGGRAPH_RESUMED) is True,
        # a root's only: what stopped the run without failing it
        interruption_of(span) if span.parent_span_id is None and span.events else None,
    )


def _failed_attempts(span: SpanRecord) -> tuple[tuple[str, str | None, str | None], ...]:
    """The models a routed call fell back from, with the error that made it fall back."""
    return tuple(
        (
            failed,
            event.str_attr(semconv.ERROR_TYPE),
            event.str_attr(semconv.AGENTMESH_ROUTE_FALLBACK_TO),
        )
        for event in span.events
        if event.name == semconv.EVENT_FALLBACK
        and (failed := event.str_attr(semconv.AGENTMESH_ROUTE_FALLBACK_FROM))
    )
