"""Node spans and handoffs: one span per node execution, at the task runner level.

LangGraph's runner calls ``run_with_retry(task, …)`` / ``arun_with_retry(task, …)`` (looked up
in the runner module's globals) once per task, retries included; these are wrapped. Each agent
node gets an ``invoke_agent {node}`` span (a ``ToolNode`` gets ``execute_tool {node}``); when
another agent of the same execution finished before it started, the span carries the handoff:
source, target, kind (``command`` when the source returned ``Command(goto=…)``), and the digest
and size of the state the node starts from. Internal nodes (``__start__``…) get no span.

LangGraph modules are imported lazily (never while the runner module is still importing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, Protocol, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_CONTEXT_DIGEST,
    AGENTMESH_HANDOFF_CONTEXT_SIZE,
    AGENTMESH_HANDOFF_KIND,
    AGENTMESH_LANGGRAPH_NODE,
    AGENTMESH_LANGGRAPH_STEP,
    AGENTMESH_RUN_ID,
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
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.handoff import context_digest
from agentmesh.instrumentation.langgraph._execution import (
    HandoffKind,
    WorkflowExecution,
    current_execution,
)
from agentmesh.instrumentation.langgraph._workflow import FRAMEWORK

__all__ = ["arun_with_retry_wrapper", "run_with_retry_wrapper"]

_INTERNAL_PREFIX: Final = "__"


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


@cache
def _bubble_up_type() -> type[BaseException] | None:
    try:
        from langgraph.errors import GraphBubbleUp
    except ImportError:
        return None
    return GraphBubbleUp


@cache
def _command_type() -> type | None:
    try:
        from langgraph.types import Command
    except ImportError:
        return None
    return Command


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


def _handoff_kind(result: object) -> HandoffKind:
    command = _command_type()
    if command is not None and isinstance(result, command) and getattr(result, "goto", None):
        return "command"
    return "edge"


def _step_of(task: _Task) -> int | None:
    metadata = task.config.get("metadata")
    if not isinstance(metadata, Mapping):
        return None
    step = cast("Mapping[str, object]", metadata).get("langgraph_step")
    return step if isinstance(step, int) and not isinstance(step, bool) else None


@dataclass(frozen=True, slots=True)
class _NodeRun:
    span: Span
    context: Context
    execution: WorkflowExecution
    name: str
    is_agent: bool

    def finish(self, result: object, error: BaseException | None) -> None:
        if error is not None:
            bubble_up = _bubble_up_type()
            if bubble_up is None or not isinstance(error, bubble_up):
                _failopen.record_error(self.span, error)  # interrupts are control flow
        if self.is_agent:
            with _failopen.guarded("langgraph.agent_finished"):
                self.execution.agent_finished(self.name, _handoff_kind(result))
        _failopen.end_span(self.span)


def _start(tracer: Tracer, task: _Task) -> _NodeRun | None:
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
    if not is_tool:
        attributes[GEN_AI_AGENT_NAME] = name
        attributes[GEN_AI_AGENT_ID] = f"{execution.name}:{name}"
    step = _step_of(task)
    if step is not None:
        attributes[AGENTMESH_LANGGRAPH_STEP] = step
    handoff = _handoff_attributes(execution, name, task.input) if not is_tool else {}
    attributes.update(handoff)
    span = tracer.start_span(f"{operation} {name}", kind=SpanKind.INTERNAL, attributes=attributes)
    if handoff:
        span.add_event(EVENT_HANDOFF, handoff)
    return _NodeRun(span, trace.set_span_in_context(span), execution, name, not is_tool)


def _handoff_attributes(
    execution: WorkflowExecution, target: str, state: object
) -> dict[str, AttributeValue]:
    source = execution.last_agent()
    if source is None:
        return {}
    digest = context_digest(state)
    return {
        GEN_AI_AGENT_HANDOFF_SOURCE_NAME: source.name,
        GEN_AI_AGENT_HANDOFF_TARGET_NAME: target,
        AGENTMESH_HANDOFF_KIND: source.kind,
        AGENTMESH_HANDOFF_CONTEXT_DIGEST: digest.digest,
        AGENTMESH_HANDOFF_CONTEXT_SIZE: digest.size,
    }


def _task_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _Task | None:
    task: object = args[0] if args else kwargs.get("task")
    return cast("_Task", task) if task is not None else None


def _begin(tracer: Tracer, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> _NodeRun | None:
    if current_execution() is None:
        return None
    task = _task_of(args, kwargs)
    if task is None:
        return None
    return _start(tracer, task)


def run_with_retry_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of the runner's ``run_with_retry``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        node = _failopen.safe_call("langgraph.start_node", _begin, tracer, args, kwargs)
        if node is None:
            return wrapped(*args, **kwargs)
        try:
            with attached(node.context):
                result = wrapped(*args, **kwargs)
        except BaseException as exc:
            node.finish(None, exc)
            raise
        node.finish(result, None)
        return result

    return wrapper


def arun_with_retry_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of the runner's ``arun_with_retry``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper returning a coroutine.
    """

    async def wrapper(
        wrapped: Callable[..., Awaitable[Any]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        node = _failopen.safe_call("langgraph.start_node", _begin, tracer, args, kwargs)
        if node is None:
            return await wrapped(*args, **kwargs)
        try:
            with attached(node.context):
                result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            node.finish(None, exc)
            raise
        node.finish(result, None)
        return result

    return wrapper
