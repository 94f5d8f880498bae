"""Workflow spans: one ``invoke_workflow {graph}`` span per graph execution.

``Pregel.stream`` and ``Pregel.astream`` are wrapped (``invoke`` and ``ainvoke`` go through
them). The wrapper returns a generator that makes the workflow context current only while the
graph itself runs (each ``next``), never in the caller between chunks, so nodes (in threads
or asyncio tasks, which copy the context) nest under the workflow span.

A graph run from inside another (a compiled graph used as a node, or a graph a node invokes)
gets a nested workflow span under the running node's span, in the same run (same run id),
with its checkpoint namespace (``agentmesh.langgraph.checkpoint_ns``). The outermost run takes
its run id and task class from baggage (or creates a run id); a task class in the run's config
metadata (``agentmesh_task_class``) wins. A run that stops at an interrupt is marked
``agentmesh.langgraph.interrupted`` and ``agentmesh.run.paused`` (not an error); a run
resuming a thread (``Command(resume=…)``, or ``None`` input on a thread) is marked
``agentmesh.langgraph.resumed``, and, when the run it continues paused in this process (the last
1,024 paused threads are remembered), ``agentmesh.resume.from_run_id`` names that run. The
outermost run's span names where the graph's checkpointer stores its checkpoints
(``agentmesh.handoff.checkpoint.store_url``), when the checkpointer is one AgentMesh knows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core import new_run_id
from agentmesh.core.errors import ResumeError
from agentmesh.core.log import get_logger
from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL,
    AGENTMESH_LANGGRAPH_CHECKPOINT_NS,
    AGENTMESH_LANGGRAPH_INTERRUPTED,
    AGENTMESH_LANGGRAPH_RESUMED,
    AGENTMESH_RESUME_CHECKPOINT_ID,
    AGENTMESH_RESUME_FROM_RUN_ID,
    AGENTMESH_RUN_ID,
    AGENTMESH_RUN_PAUSED,
    AGENTMESH_RUN_RESUMED,
    AGENTMESH_RUN_TASK_CLASS,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation._paused_runs import PausedRuns
from agentmesh.instrumentation.baggage import current_task_class, with_task_class
from agentmesh.instrumentation.langgraph._checkpointer import checkpointer_store_url
from agentmesh.instrumentation.langgraph._execution import WorkflowExecution, current_execution
from agentmesh.instrumentation.langgraph._interrupts import BubbleUp, classify
from agentmesh.instrumentation.langgraph._resume import (
    ResumeCall,
    aresume_call,
    claim_plan,
    replay_call,
    resume_call,
)
from agentmesh.instrumentation.resume import ResumeTarget
from agentmesh.instrumentation.run_context import current_run_id, with_run_id

_log = get_logger(__name__)

__all__ = [
    "FRAMEWORK",
    "TASK_CLASS_METADATA_KEY",
    "astream_wrapper",
    "step_context",
    "stream_wrapper",
]

FRAMEWORK: Final = "langgraph"
TASK_CLASS_METADATA_KEY: Final = "agentmesh_task_class"
"""Key of a run's config metadata naming its task class."""

_DEFAULT_GRAPH_NAME: Final = "LangGraph"
_INTERRUPT_KEY: Final = "__interrupt__"
_CHECKPOINTER: Final = "__pregel_checkpointer"


_PAUSED = PausedRuns()
"""The graph runs paused (at an interrupt) in this process, by thread id."""


def step_context(execution: WorkflowExecution, context: Context) -> Context:
    """Return ``context`` carrying the run's baggage (run id, task class) for an agent step.

    Args:
        execution: The execution the step belongs to.
        context: The context to extend.

    Returns:
        The new context.
    """
    context = with_run_id(execution.run_id, context)
    if execution.task_class is not None:
        context = with_task_class(execution.task_class, context)
    return context


@dataclass(frozen=True, slots=True)
class _WorkflowRun:
    span: Span
    context: Context
    execution: WorkflowExecution
    resume: ResumeTarget | None = None
    """A plan whose checkpoint this run continues from (its call still to be rewritten)."""

    def resumed(self) -> None:
        """Record on the span which checkpoint the rewritten call continues from."""
        target = self.resume
        if target is not None and target.checkpoint_id is not None:
            with _failopen.guarded("langgraph.resumed"):
                self.span.set_attribute(AGENTMESH_RESUME_CHECKPOINT_ID, target.checkpoint_id)

    def saw(self, item: object) -> None:
        """Note an interrupt reported in the stream (breakpoints raise in no node)."""
        with _failopen.guarded("langgraph.stream_item"):
            chunk: object = item
            if isinstance(item, tuple):
                parts = cast("tuple[object, ...]", item)
                chunk = parts[-1] if parts else None
            if isinstance(chunk, dict) and _INTERRUPT_KEY in chunk:
                self.execution.mark_interrupted()

    def finish(self, error: BaseException | None) -> None:
        kind = classify(error) if error is not None else None
        if error is not None and kind is None:
            _failopen.record_error(self.span, error)
        if kind is BubbleUp.INTERRUPT or (error is None and self.execution.interrupted):
            with _failopen.guarded("langgraph.workflow_interrupted"):
                self.span.set_attribute(AGENTMESH_LANGGRAPH_INTERRUPTED, True)
                self.span.set_attribute(AGENTMESH_RUN_PAUSED, True)
                execution = self.execution
                if execution.depth == 0 and execution.conversation_id is not None:
                    _PAUSED.paused(execution.conversation_id, execution.run_id)
        _failopen.end_span(self.span)


@cache
def _command_type() -> type | None:
    try:
        from langgraph.types import Command
    except ImportError:
        return None
    return Command


def _input_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> object:
    return kwargs["input"] if "input" in kwargs else (args[0] if args else None)


def _is_resume(value: object, thread_id: str | None) -> bool:
    if value is None:
        return thread_id is not None  # no input: continue the thread from its checkpoint
    command = _command_type()
    return command is not None and isinstance(value, command) and _resume(value) is not None


def _resume(command: object) -> object:
    return getattr(command, "resume", None)


def _config_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Mapping[str, object]:
    config: object = (
        kwargs["config"] if "config" in kwargs else (args[1] if len(args) > 1 else None)
    )
    if isinstance(config, Mapping):
        return cast("Mapping[str, object]", config)
    inherited = _inherited_config()
    return inherited if inherited is not None else {}


def _inherited_config() -> Mapping[str, object] | None:
    try:
        from langchain_core.runnables.config import var_child_runnable_config
    except ImportError:
        return None
    config: object = var_child_runnable_config.get()
    return cast("Mapping[str, object]", config) if isinstance(config, Mapping) else None


def _section(config: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = config.get(key)
    return cast("Mapping[str, object]", value) if isinstance(value, Mapping) else {}


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _start(
    tracer: Tracer, instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[_WorkflowRun, tuple[Any, ...], dict[str, Any]]:
    name_value = getattr(instance, "name", None)
    name = name_value if isinstance(name_value, str) and name_value else _DEFAULT_GRAPH_NAME
    config = _config_of(args, kwargs)
    configurable = _section(config, "configurable")
    parent = current_execution()
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.INVOKE_WORKFLOW,
        GEN_AI_WORKFLOW_NAME: name,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
    }
    target: ResumeTarget | None = None
    if parent is None:
        target = claim_plan(config)
        if target is not None:
            attributes[AGENTMESH_RESUME_FROM_RUN_ID] = target.run_id
        task_class = _text(_section(config, "metadata").get(TASK_CLASS_METADATA_KEY))
        execution = WorkflowExecution(
            name,
            current_run_id() or new_run_id(),
            conversation_id=_text(configurable.get("thread_id")),
            task_class=task_class or current_task_class(),
        )
        thread_id = execution.conversation_id
        checkpointer = configurable.get(_CHECKPOINTER) or getattr(instance, "checkpointer", None)
        store_url = checkpointer_store_url(checkpointer)
        if store_url is not None:
            attributes[AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL] = store_url
        # a pause is taken by the thread's next run, resuming or not: at most one link
        paused_run = _PAUSED.resumed(thread_id) if thread_id is not None else None
        resuming = target is not None and target.checkpoint_id is not None  # rewritten next
        if resuming or _is_resume(_input_of(args, kwargs), thread_id):
            attributes[AGENTMESH_LANGGRAPH_RESUMED] = True
            attributes[AGENTMESH_RUN_RESUMED] = True
            if paused_run is not None and target is None:
                attributes[AGENTMESH_RESUME_FROM_RUN_ID] = paused_run
    else:
        execution = WorkflowExecution(
            name,
            parent.run_id,
            conversation_id=parent.conversation_id,
            task_class=parent.task_class,
            depth=parent.depth + 1,
        )
        namespace = _text(configurable.get("checkpoint_ns"))
        if namespace is not None:
            attributes[AGENTMESH_LANGGRAPH_CHECKPOINT_NS] = namespace
    attributes[AGENTMESH_RUN_ID] = execution.run_id
    if execution.conversation_id is not None:
        attributes[GEN_AI_CONVERSATION_ID] = execution.conversation_id
    if execution.task_class is not None:
        attributes[AGENTMESH_RUN_TASK_CLASS] = execution.task_class
    span = tracer.start_span(
        f"{Operation.INVOKE_WORKFLOW} {name}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    context = trace.set_span_in_context(span, otel_context.get_current())
    context = step_context(execution, execution.into(context))
    return _WorkflowRun(span, context, execution, target), args, kwargs


def _traced(
    tracer: Tracer,
    instance: object,
    wrapped: Callable[..., Iterator[object]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Iterator[object]:
    started = _failopen.safe_call(
        "langgraph.start_workflow", _start, tracer, instance, args, kwargs
    )
    if started is None:
        yield from wrapped(*args, **kwargs)
        return
    run, args, kwargs = started
    error: BaseException | None = None
    inner: Iterator[object] | None = None
    done = False
    try:
        target = run.resume
        if target is not None and target.checkpoint_id is not None:
            config = _config_of(args, kwargs)
            try:
                call = resume_call(instance, target, target.checkpoint_id, args, kwargs, config)
            except ResumeError:
                raise
            except Exception as exc:  # noqa: BLE001 - fail-open: resume as before
                call = _fallen_back(exc, target, args, kwargs)
            run.resumed()
            args, kwargs = call.args, call.kwargs
        with attached(run.context):
            inner = iter(wrapped(*args, **kwargs))
        while True:
            with attached(run.context):
                try:
                    item = next(inner)
                except StopIteration:
                    done = True
                    return
            run.saw(item)
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        done = True
        raise
    finally:
        try:
            if not done and inner is not None:  # the caller stopped early: let the graph clean up
                close = getattr(inner, "close", None)
                if callable(close):
                    with attached(run.context):
                        close()
        finally:
            run.finish(error)


async def _atraced(
    tracer: Tracer,
    instance: object,
    wrapped: Callable[..., AsyncIterator[object]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncIterator[object]:
    started = _failopen.safe_call(
        "langgraph.start_workflow", _start, tracer, instance, args, kwargs
    )
    if started is None:
        async for item in wrapped(*args, **kwargs):
            yield item
        return
    run, args, kwargs = started
    error: BaseException | None = None
    inner: AsyncIterator[object] | None = None
    done = False
    try:
        target = run.resume
        if target is not None and target.checkpoint_id is not None:
            config = _config_of(args, kwargs)
            try:
                call = await aresume_call(
                    instance, target, target.checkpoint_id, args, kwargs, config
                )
            except ResumeError:
                raise
            except Exception as exc:  # noqa: BLE001 - fail-open: resume as before
                call = _fallen_back(exc, target, args, kwargs)
            run.resumed()
            args, kwargs = call.args, call.kwargs
        with attached(run.context):
            inner = aiter(wrapped(*args, **kwargs))
        while True:
            with attached(run.context):
                try:
                    item = await anext(inner)
                except StopAsyncIteration:
                    done = True
                    return
            run.saw(item)
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        done = True
        raise
    finally:
        try:
            if not done and inner is not None:
                aclose = getattr(inner, "aclose", None)
                if callable(aclose):
                    with attached(run.context):
                        await cast("Callable[[], Awaitable[object]]", aclose)()
        finally:
            run.finish(error)


def _fallen_back(
    exc: Exception, target: ResumeTarget, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ResumeCall:
    """The checkpointer could not be asked: name the plan's checkpoint and let LangGraph try."""
    _log.warning(
        "resume: the checkpointer could not be read; continuing from the plan's checkpoint",
        run_id=target.run_id,
        checkpoint_id=target.checkpoint_id,
        reason=f"{type(exc).__name__}: {exc}",
    )
    return replay_call(target.checkpoint_id or "", args, kwargs, _config_of(args, kwargs))


def stream_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``Pregel.stream``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper.
    """

    def wrapper(
        wrapped: Callable[..., Iterator[object]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        return _traced(tracer, instance, wrapped, args, kwargs)

    return wrapper


def astream_wrapper(tracer: Tracer) -> Wrapper:
    """Build the wrapper of ``Pregel.astream``.

    Args:
        tracer: The tracer spans are started with.

    Returns:
        A wrapt wrapper (returning an async iterator, like ``astream``).
    """

    def wrapper(
        wrapped: Callable[..., AsyncIterator[object]],
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        return _atraced(tracer, instance, wrapped, args, kwargs)

    return wrapper
