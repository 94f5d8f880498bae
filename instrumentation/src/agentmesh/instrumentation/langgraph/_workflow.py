"""Workflow spans: one ``invoke_workflow {graph}`` span per outermost graph execution.

``Pregel.stream`` and ``Pregel.astream`` are wrapped (``invoke`` and ``ainvoke`` go through
them). The wrapper returns a generator that makes the workflow context current only while the
graph itself runs (each ``next``), never in the caller between chunks, so nodes (in threads
or asyncio tasks, which copy the context) nest under the workflow span. A graph run from inside
another (a subgraph, or a graph invoked by a node) belongs to the outer execution: no new span.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core import new_run_id
from agentmesh.core.semconv import (
    AGENTMESH_FRAMEWORK,
    AGENTMESH_RUN_ID,
    GEN_AI_CONVERSATION_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._context import attached
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.langgraph._execution import WorkflowExecution, current_execution
from agentmesh.instrumentation.run_context import current_run_id, with_run_id

__all__ = ["FRAMEWORK", "astream_wrapper", "stream_wrapper"]

FRAMEWORK: Final = "langgraph"
_DEFAULT_GRAPH_NAME: Final = "LangGraph"


@dataclass(frozen=True, slots=True)
class _WorkflowRun:
    span: Span
    context: Context

    def finish(self, error: BaseException | None) -> None:
        if error is not None:
            _failopen.record_error(self.span, error)
        _failopen.end_span(self.span)


def _config_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Mapping[str, object] | None:
    config: object = (
        kwargs["config"] if "config" in kwargs else (args[1] if len(args) > 1 else None)
    )
    return cast("Mapping[str, object]", config) if isinstance(config, Mapping) else None


def _thread_id(config: Mapping[str, object] | None) -> str | None:
    configurable = config.get("configurable") if config is not None else None
    if not isinstance(configurable, Mapping):
        return None
    thread_id = cast("Mapping[str, object]", configurable).get("thread_id")
    return None if thread_id is None else str(thread_id)


def _start(
    tracer: Tracer, instance: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> _WorkflowRun:
    name_value = getattr(instance, "name", None)
    name = name_value if isinstance(name_value, str) and name_value else _DEFAULT_GRAPH_NAME
    run_id = current_run_id() or new_run_id()
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.INVOKE_WORKFLOW,
        GEN_AI_WORKFLOW_NAME: name,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
        AGENTMESH_RUN_ID: run_id,
    }
    thread_id = _thread_id(_config_of(args, kwargs))
    if thread_id is not None:
        attributes[GEN_AI_CONVERSATION_ID] = thread_id
    span = tracer.start_span(
        f"{Operation.INVOKE_WORKFLOW} {name}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    context = trace.set_span_in_context(span, otel_context.get_current())
    context = with_run_id(run_id, WorkflowExecution(name, run_id).into(context))
    return _WorkflowRun(span, context)


def _traced(
    tracer: Tracer,
    instance: object,
    wrapped: Callable[..., Iterator[object]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Iterator[object]:
    run = _failopen.safe_call("langgraph.start_workflow", _start, tracer, instance, args, kwargs)
    if run is None:
        yield from wrapped(*args, **kwargs)
        return
    error: BaseException | None = None
    inner: Iterator[object] | None = None
    done = False
    try:
        with attached(run.context):
            inner = iter(wrapped(*args, **kwargs))
        while True:
            with attached(run.context):
                try:
                    item = next(inner)
                except StopIteration:
                    done = True
                    return
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
    run = _failopen.safe_call("langgraph.start_workflow", _start, tracer, instance, args, kwargs)
    if run is None:
        async for item in wrapped(*args, **kwargs):
            yield item
        return
    error: BaseException | None = None
    inner: AsyncIterator[object] | None = None
    done = False
    try:
        with attached(run.context):
            inner = aiter(wrapped(*args, **kwargs))
        while True:
            with attached(run.context):
                try:
                    item = await anext(inner)
                except StopAsyncIteration:
                    done = True
                    return
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
        if current_execution() is not None:
            return wrapped(*args, **kwargs)
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
        if current_execution() is not None:
            return wrapped(*args, **kwargs)
        return _atraced(tracer, instance, wrapped, args, kwargs)

    return wrapper
