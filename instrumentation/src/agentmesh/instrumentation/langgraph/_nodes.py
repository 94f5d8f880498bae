"""Node spans and handoffs: one span per node execution, at the task runner level.

LangGraph's runner calls ``run_with_retry(task, …)`` / ``arun_with_retry(task, …)`` (looked up
in the runner module's globals) once per task, retries included; these are wrapped. Each agent
node gets an ``invoke_agent {node}`` span (a ``ToolNode`` gets ``execute_tool {node}``).

Handoffs follow the graph's own wiring: when a node finishes, the writes LangGraph recorded
for it say which nodes run next and how (:mod:`._routes`); each target node, when it starts,
takes the handoffs meant for it and its span records the source, the target, the kind
(``edge``, ``conditional``, ``command`` or ``send``), and the digest and size of the state it
starts from (with content capture on, the state itself, capped), and, when the graph has a
checkpointer, the checkpoint its step started from (and, when the checkpointer is one AgentMesh
knows, where it stores it: ``agentmesh.handoff.checkpoint.store_url``); without one, when
``AGENTMESH_CHECKPOINT_URL`` names a store, a handoff checkpoint of that state, written in the
background (:mod:`agentmesh.instrumentation.checkpoints`). With it goes
``agentmesh.handoff.context.received_digest``, the digest of what the target was actually given,
taken apart from the sent one, over the same keys: the sent digest is of the state the graph
holds (its channels, after the source's writes went through the reducers), or of the ``Send``
packet as the source handed it on; the received one of the target's input (after LangGraph's
coercion to the node's input schema). They differ when context was lost on the way. A tool
node is transparent: the agent that called the tools stays the source of the next handoff.
Internal nodes (``__start__``…) get no span. An interrupt marks the span
``agentmesh.langgraph.interrupted`` and is not an error. The node's context carries the run id
and task class as W3C baggage.

LangGraph modules are imported lazily (never while the runner module is still importing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Protocol, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_CHECKPOINT_ID,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_HANDOFF_RECEIVED_DIGEST,
    AGENTMESH_LANGGRAPH_CHECKPOINT_NS,
    AGENTMESH_LANGGRAPH_INTERRUPTED,
    AGENTMESH_LANGGRAPH_NODE,
    AGENTMESH_LANGGRAPH_STEP,
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_TASK_CLASS,
    EVENT_HANDOFF,
    GEN_AI_AGENT_HANDOFF_SOURCE_NAME,
    GEN_AI_AGENT_HANDOFF_TARGET_NAME,
    GEN_AI_AGENT_ID,
    GEN_AI_AGENT_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation._scoped import async_scoped, sync_scoped
from agentmesh.instrumentation.checkpoints import checkpoint_handoff
from agentmesh.instrumentation.handoff import ContextDigest, context_digest
from agentmesh.instrumentation.langgraph._checkpointer import checkpointer_store_url
from agentmesh.instrumentation.langgraph._execution import (
    HandoffSource,
    Outbound,
    WorkflowExecution,
    current_execution,
)
from agentmesh.instrumentation.langgraph._interrupts import BubbleUp, classify
from agentmesh.instrumentation.langgraph._retries import stop_not_retried
from agentmesh.instrumentation.langgraph._routes import (
    MISSING,
    Handed,
    Handovers,
    RouteLog,
    current_routes,
    graph_state,
    handovers_of,
    outbound_of,
    parent_command_targets,
    state_keys,
    state_value,
)
from agentmesh.instrumentation.langgraph._state import handoff_state_attributes
from agentmesh.instrumentation.langgraph._workflow import FRAMEWORK, step_context

__all__ = ["NodeOptions", "arun_with_retry_wrapper", "run_with_retry_wrapper"]

_INTERNAL_PREFIX: Final = "__"
_PUSH: Final = "__pregel_push"
_CHECKPOINTER: Final = "__pregel_checkpointer"
_CHECKPOINT_MAP: Final = "checkpoint_map"
_CHECKPOINT_NS: Final = "checkpoint_ns"
_NS_SEP: Final = "|"


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """How node spans are built.

    Attributes:
        capture_content: Record the state that crossed a handoff (capped).
    """

    capture_content: bool = False


class _Task(Protocol):
    """The parts of LangGraph's ``PregelExecutableTask`` the spans use."""

    @property
    def name(self) -> object: ...
    @property
    def input(self) -> object: ...
    @property
    def config(self) -> Mapping[str, Any]: ...
    @property
    def proc(self) -> object: ...


@cache
def _tool_node_type() -> type | None:
    try:
        from langgraph.prebuilt import ToolNode
    except ImportError:
        return None
    return ToolNode


def _is_tool_node(proc: object) -> bool:
    tool_node = _tool_node_type()
    if tool_node is None:
        return False
    steps: object = getattr(proc, "steps", None)
    candidates: list[object] = [proc, getattr(proc, "bound", None)]
    if isinstance(steps, list | tuple):
        first = cast("list[object] | tuple[object, ...]", steps)[:1]
        candidates.extend(first)
    return any(isinstance(candidate, tool_node) for candidate in candidates)


def _metadata(task: _Task) -> Mapping[str, object]:
    metadata = task.config.get("metadata")
    return cast("Mapping[str, object]", metadata) if isinstance(metadata, Mapping) else {}


def _step_of(task: _Task) -> int | None:
    step = _metadata(task).get("langgraph_step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def _checkpointer(task: _Task) -> object:
    configurable = task.config.get("configurable")
    if not isinstance(configurable, Mapping):
        return None
    return cast("Mapping[str, object]", configurable).get(_CHECKPOINTER)


def _has_checkpointer(task: _Task) -> bool:
    return _checkpointer(task) is not None


def _checkpoint_id(task: _Task) -> str | None:
    """The checkpoint the task's step started from, when the graph has a checkpointer."""
    configurable = task.config.get("configurable")
    if not isinstance(configurable, Mapping):
        return None
    conf = cast("Mapping[str, object]", configurable)
    if conf.get(_CHECKPOINTER) is None:
        return None
    checkpoints = conf.get(_CHECKPOINT_MAP)
    namespace = conf.get(_CHECKPOINT_NS)
    if not isinstance(checkpoints, Mapping) or not isinstance(namespace, str):
        return None
    graph_namespace = namespace.rpartition(_NS_SEP)[0]  # drop the task's own segment
    checkpoint = cast("Mapping[str, object]", checkpoints).get(graph_namespace)
    return checkpoint if isinstance(checkpoint, str) and checkpoint else None


def _is_send(task: _Task) -> bool:
    triggers: object = getattr(task, "triggers", None)
    if isinstance(triggers, list | tuple):
        return _PUSH in cast("list[object] | tuple[object, ...]", triggers)
    path: object = _metadata(task).get("langgraph_path")
    if not isinstance(path, tuple):
        return False
    items = cast("tuple[object, ...]", path)
    return bool(items) and items[0] == _PUSH


@dataclass(frozen=True, slots=True)
class _NodeRun:
    span: Span
    context: Context
    execution: WorkflowExecution
    task: _Task
    name: str
    step: int
    is_agent: bool
    inbound: list[HandoffSource]
    routes: RouteLog

    def finish(self, result: object, error: BaseException | None) -> None:
        if error is not None:
            self._failed(error)
        else:
            with _failopen.guarded("langgraph.node_finished"):
                self._hand_over(result)
        _failopen.end_span(self.span)

    def _failed(self, error: BaseException) -> None:
        kind = classify(error)
        if kind is BubbleUp.INTERRUPT:
            with _failopen.guarded("langgraph.interrupted"):
                self.span.set_attribute(AGENTMESH_LANGGRAPH_INTERRUPTED, True)
                self.execution.mark_interrupted()
        elif kind is BubbleUp.PARENT_COMMAND:
            parent = self.routes.parent
            if parent is not None:
                with _failopen.guarded("langgraph.parent_command"):
                    parent.commanded_to(parent_command_targets(error))
        elif kind is None:
            _failopen.record_error(self.span, error)

    def _hand_over(self, result: object) -> None:
        writes: object = getattr(self.task, "writes", None)
        if writes is None:
            return
        outbound = outbound_of(cast("list[object]", writes), result, self.routes)
        if outbound:
            _failopen.safe_call("langgraph.handed", self._note_handed, outbound)
        if self.is_agent:
            self.execution.node_finished(self.name, self.step, outbound)
            return
        for source in self.inbound:  # a tool node hands its caller's work on
            self.execution.node_finished(source.name, self.step, outbound)

    def _note_handed(self, outbound: list[Outbound]) -> None:
        """Note the ``Send`` packets this node hands on, for their targets to compare."""
        sends = [out for out in outbound if out.is_send]
        if not sends:
            return
        log = handovers_of(self.execution)
        sources = [self.name] if self.is_agent else [s.name for s in self.inbound]
        for out in sends:
            handed = Handed(out.packet, context_digest(out.packet).digest)
            for source in sources:
                log.handed(source, out.target, handed)


def _received(
    task: _Task,
    target: str,
    inbound: list[HandoffSource],
    is_send: bool,
    compare: bool,
    log: Handovers,
) -> tuple[dict[str, AttributeValue], object]:
    """Digest what was sent to this node and what it received, each from its own end.

    Takes the ``Send`` packet meant for this task (also when nothing is compared: a tool node,
    an agent continuing), so that none is left behind.

    Returns:
        The sent digest and size and the received digest, or nothing; and the sent value
        (:data:`MISSING` when nothing was compared).
    """
    if is_send:
        received = context_digest(task.input)
        names = list(dict.fromkeys(s.name for s in inbound))
        taken = [log.take_packet(n, target, received.digest) for n in names]
        handed = next((h for h in taken if h is not None), None)
        if not compare or handed is None:
            return {}, MISSING
        return _digests(context_digest(handed.packet), received.digest), handed.packet
    if not compare:
        return {}, MISSING
    keys = state_keys(task.input)
    stored = graph_state(task.config, keys) if keys else None
    if not keys or stored is None:
        return {}, MISSING
    given: dict[str, object] = {}
    for key in keys:
        value = state_value(task.input, key)
        if value is not MISSING and key in stored:
            given[key] = value
    if not given:
        return {}, MISSING
    sent_state = {key: stored[key] for key in given}
    sent = context_digest(sent_state)
    return _digests(sent, context_digest(given).digest), sent_state


def _digests(sent: ContextDigest, received: str) -> dict[str, AttributeValue]:
    return {
        AGENTMESH_HANDOFF_CONTEXT_DIGEST: sent.digest,
        AGENTMESH_HANDOFF_CONTEXT_SIZE: sent.size,
        AGENTMESH_HANDOFF_RECEIVED_DIGEST: received,
    }


def _handoff_events(
    task: _Task, target: str, sources: list[HandoffSource], options: NodeOptions
) -> tuple[list[dict[str, AttributeValue]], dict[str, AttributeValue]]:
    """One handoff event per source, and the attributes of the state that crossed."""
    state = handoff_state_attributes(task.input, capture_content=options.capture_content)
    checkpoint = _checkpoint_id(task)
    saved: dict[str, AttributeValue] = {}
    if checkpoint is not None:
        saved[AGENTMESH_HANDOFF_CHECKPOINT_ID] = checkpoint
        store_url = checkpointer_store_url(_checkpointer(task))
        if store_url is not None:
            saved[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] = store_url
        state.update(saved)
    events: list[dict[str, AttributeValue]] = []
    for source in sources:
        event: dict[str, AttributeValue] = {
            GEN_AI_AGENT_HANDOFF_SOURCE_NAME: source.name,
            GEN_AI_AGENT_HANDOFF_TARGET_NAME: target,
            AGENTMESH_HANDOFF_KIND: source.kind,
            AGENTMESH_HANDOFF_CONTEXT_DIGEST: state[AGENTMESH_HANDOFF_CONTEXT_DIGEST],
            AGENTMESH_HANDOFF_CONTEXT_SIZE: state[AGENTMESH_HANDOFF_CONTEXT_SIZE],
        }
        event.update(saved)
        events.append(event)
    return events, state


def _checkpoint(
    span: Span, run_id: str, context: object, handoff: Mapping[str, AttributeValue]
) -> dict[str, AttributeValue]:
    """Queue a handoff checkpoint of the state that crossed (graphs without a checkpointer)."""
    return checkpoint_handoff(
        span,
        run_id,
        context,
        source=str(handoff[GEN_AI_AGENT_HANDOFF_SOURCE_NAME]),
        target=str(handoff[GEN_AI_AGENT_HANDOFF_TARGET_NAME]),
        digest=str(handoff[AGENTMESH_HANDOFF_CONTEXT_DIGEST]),
        handoff_kind=str(handoff[AGENTMESH_HANDOFF_KIND]),
    )


def _start(tracer: Tracer, options: NodeOptions, task: _Task) -> _NodeRun | None:
    execution = current_execution()
    raw_name = task.name
    if execution is None or not isinstance(raw_name, str) or raw_name.startswith(_INTERNAL_PREFIX):
        return None
    name = raw_name
    is_tool = _is_tool_node(task.proc)
    operation = Operation.EXECUTE_TOOL if is_tool else Operation.INVOKE_AGENT
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: operation,
        GEN_AI_WORKFLOW_NAME: execution.name,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
        AGENTMESH_LANGGRAPH_NODE: name,
        AGENTMESH_RUN_ID: execution.run_id,
    }
    if execution.task_class is not None:
        attributes[AGENTMESH_RUN_TASK_CLASS] = execution.task_class
    if not is_tool:
        attributes[GEN_AI_AGENT_NAME] = name
        attributes[GEN_AI_AGENT_ID] = f"{execution.name}:{name}"
    step = _step_of(task)
    if step is not None:
        attributes[AGENTMESH_LANGGRAPH_STEP] = step
    if execution.depth > 0:
        namespace = _metadata(task).get("langgraph_checkpoint_ns")
        if isinstance(namespace, str) and namespace:
            attributes[AGENTMESH_LANGGRAPH_CHECKPOINT_NS] = namespace
    is_send = _is_send(task)
    inbound = execution.handoffs_to(name, step=step, is_send=is_send, packet=task.input)
    sources = [s for s in inbound if s.name != name]  # an agent continuing is no handoff
    compare = bool(sources) and not is_tool
    crossed = (  # a Send packet is taken even when nothing is compared
        _failopen.safe_call(
            "langgraph.received",
            _received,
            task,
            name,
            inbound,
            is_send,
            compare,
            handovers_of(execution),
        )
        if compare or (inbound and is_send)
        else None
    )
    crossed_attributes, sent = crossed if crossed is not None else ({}, MISSING)
    events: list[dict[str, AttributeValue]] = []
    if sources and not is_tool:  # a failure here costs the handoff, never the span
        received = _failopen.safe_call(
            "langgraph.handoff", _handoff_events, task, name, sources, options
        )
        if received is not None:
            events, state = received
            if crossed_attributes:
                for event in events:
                    event.update(crossed_attributes)
                state.update(crossed_attributes)
            attributes.update(events[-1])  # the latest source, when several fed the node
            attributes.update(state)
    span = tracer.start_span(f"{operation} {name}", kind=SpanKind.INTERNAL, attributes=attributes)
    if events and not _has_checkpointer(task):
        saved = _failopen.safe_call(
            "langgraph.handoff_checkpoint",
            _checkpoint,
            span,
            execution.run_id,
            task.input if sent is MISSING else sent,
            events[-1],
        )
        if saved:
            for event in events:
                event.update(saved)
    for event in events:
        span.add_event(EVENT_HANDOFF, event)
    routes = RouteLog(parent=current_routes())
    context = routes.into(step_context(execution, trace.set_span_in_context(span)))
    return _NodeRun(
        span=span,
        context=context,
        execution=execution,
        task=task,
        name=name,
        step=step if step is not None else 0,
        is_agent=not is_tool,
        inbound=inbound if is_tool else [],
        routes=routes,
    )


def _task_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _Task | None:
    task: object = args[0] if args else kwargs.get("task")
    return cast("_Task", task) if task is not None else None


def _begin(
    tracer: Tracer, options: NodeOptions, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> _NodeRun | None:
    if current_execution() is None:
        return None
    task = _task_of(args, kwargs)
    if task is None:
        return None
    return _start(tracer, options, task)


def run_with_retry_wrapper(tracer: Tracer, options: NodeOptions) -> Wrapper:
    """Build the wrapper of the runner's ``run_with_retry``.

    Args:
        tracer: The tracer spans are started with.
        options: How spans are built.

    Returns:
        A wrapt wrapper.
    """
    return _stops_not_retried(
        sync_scoped(
            "langgraph.start_node", lambda args, kwargs: _begin(tracer, options, args, kwargs)
        )
    )


def arun_with_retry_wrapper(tracer: Tracer, options: NodeOptions) -> Wrapper:
    """Build the wrapper of the runner's ``arun_with_retry``.

    Args:
        tracer: The tracer spans are started with.
        options: How spans are built.

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return _stops_not_retried(
        async_scoped(
            "langgraph.start_node", lambda args, kwargs: _begin(tracer, options, args, kwargs)
        )
    )


def _stops_not_retried(scoped: Wrapper) -> Wrapper:
    """Run the scoped runner with retry policies that never retry a stop (:mod:`._retries`)."""

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        def runner(*call_args: Any, **call_kwargs: Any) -> Any:
            guarded = _failopen.safe_call(
                "langgraph.retry_policy", stop_not_retried, call_args, call_kwargs
            )
            if guarded is not None:
                call_args, call_kwargs = guarded
            return wrapped(*call_args, **call_kwargs)  # a coroutine for arun_with_retry

        return scoped(runner, instance, args, kwargs)

    return wrapper
