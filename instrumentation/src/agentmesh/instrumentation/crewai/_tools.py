"""Tool spans: one ``execute_tool {tool name}`` span per tool execution.

CrewAI runs a tool along one of two paths, both wrapped:

- native function calling: ``BaseTool.run`` / ``arun`` (``Tool.run`` / ``arun`` for tools made
  with ``@tool``, which override them);
- text (ReAct) tool calling: ``CrewStructuredTool.invoke`` / ``ainvoke``, whose function is the
  original tool's ``_run``.

A tool running inside its own span (one path calling the other) gets no second span. The span
carries the digests of the call's arguments and of its result (always: loop detection compares
calls by them); with content capture on, the arguments and result themselves, each capped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_CONTENT_TRUNCATED,
    AGENTMESH_FRAMEWORK,
    AGENTMESH_RUN_ID,
    AGENTMESH_TOOL_ARGUMENTS_DIGEST,
    AGENTMESH_TOOL_RESULT_DIGEST,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.crewai._bound import async_method_scoped, sync_method_scoped
from agentmesh.instrumentation.crewai._crossing import capped_content
from agentmesh.instrumentation.crewai._execution import current_workflow_name
from agentmesh.instrumentation.crewai._names import text_or_none
from agentmesh.instrumentation.crewai._workflow import FRAMEWORK
from agentmesh.instrumentation.handoff import bounded_digest
from agentmesh.instrumentation.run_context import current_run_id

__all__ = [
    "ArgumentsOf",
    "async_tool_wrapper",
    "invoke_arguments",
    "run_arguments",
    "tool_wrapper",
]

_TOOL_KEY: Final = otel_context.create_key("agentmesh.crewai.tool")
_TOOL_TYPE: Final = "function"
_DEFAULT_TOOL_NAME: Final = "tool"
_JSON_CAP: Final = 65_536
"""Longest arguments text parsed as JSON for the digest (a longer one is digested as text)."""


ArgumentsOf = Callable[[tuple[Any, ...], Mapping[str, Any]], object]
"""Reads the tool call's arguments from the wrapped method's ``args`` and ``kwargs``."""


def run_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> object:
    """Return the arguments of ``run(*args, **kwargs)``.

    Args:
        args: Positional arguments.
        kwargs: Keyword arguments.

    Returns:
        The keyword arguments, or the positional ones when there are no keyword arguments.
    """
    return dict(kwargs) if kwargs or not args else list(args)


def invoke_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> object:
    """Return the arguments of ``invoke(input, config=None, **kwargs)``.

    Args:
        args: Positional arguments.
        kwargs: Keyword arguments.

    Returns:
        The ``input`` (a mapping or a text).
    """
    return args[0] if args else kwargs.get("input")


@dataclass(frozen=True, slots=True)
class _ToolRun:
    span: Span
    context: Context
    capture_content: bool

    def finish(self, result: object, error: BaseException | None) -> None:
        if error is not None:
            _failopen.record_error(self.span, error)
        else:
            with _failopen.guarded("crewai.tool_result"):
                self._result(result)
        _failopen.end_span(self.span)

    def _result(self, result: object) -> None:
        self.span.set_attribute(AGENTMESH_TOOL_RESULT_DIGEST, bounded_digest(result))
        if self.capture_content:
            text, truncated = capped_content(result)
            self.span.set_attribute(GEN_AI_TOOL_CALL_RESULT, text)
            if truncated:
                self.span.set_attribute(AGENTMESH_CONTENT_TRUNCATED, True)


def _parsed(arguments: object) -> object:
    """Arguments given as a JSON object text (text tool calling) as the object itself."""
    if isinstance(arguments, str) and arguments[:1] == "{" and len(arguments) <= _JSON_CAP:
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _identity(tool: object) -> int:
    original: object = getattr(tool, "_original_tool", None)
    return id(original if original is not None else tool)


def _begin(
    tracer: Tracer,
    capture_content: bool,
    arguments_of: ArgumentsOf,
    tool: object,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
) -> _ToolRun | None:
    identity = _identity(tool)
    if otel_context.get_value(_TOOL_KEY) == identity:
        return None
    name = text_or_none(getattr(tool, "name", None)) or _DEFAULT_TOOL_NAME
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.EXECUTE_TOOL,
        GEN_AI_TOOL_NAME: name,
        GEN_AI_TOOL_TYPE: _TOOL_TYPE,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
    }
    workflow = current_workflow_name()
    if workflow is not None:
        attributes[GEN_AI_WORKFLOW_NAME] = workflow
    run_id = current_run_id()
    if run_id is not None:
        attributes[AGENTMESH_RUN_ID] = run_id
    arguments = arguments_of(args, kwargs)
    attributes[AGENTMESH_TOOL_ARGUMENTS_DIGEST] = bounded_digest(_parsed(arguments))
    if capture_content:
        text, truncated = capped_content(arguments)
        attributes[GEN_AI_TOOL_CALL_ARGUMENTS] = text
        if truncated:
            attributes[AGENTMESH_CONTENT_TRUNCATED] = True
    span = tracer.start_span(
        f"{Operation.EXECUTE_TOOL} {name}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    context = otel_context.set_value(
        _TOOL_KEY, identity, trace.set_span_in_context(span, otel_context.get_current())
    )
    return _ToolRun(span, context, capture_content)


def tool_wrapper(tracer: Tracer, capture_content: bool, arguments_of: ArgumentsOf) -> Wrapper:
    """Build the wrapper of a synchronous tool entry (``run``, ``invoke``).

    Args:
        tracer: The tracer spans are started with.
        capture_content: Record arguments and results (capped).
        arguments_of: Reads the arguments of the wrapped method.

    Returns:
        A wrapt wrapper.
    """
    return sync_method_scoped(
        "crewai.start_tool",
        lambda tool, args, kwargs: _begin(
            tracer, capture_content, arguments_of, tool, args, kwargs
        ),
    )


def async_tool_wrapper(tracer: Tracer, capture_content: bool, arguments_of: ArgumentsOf) -> Wrapper:
    """Build the wrapper of an asynchronous tool entry (``arun``, ``ainvoke``).

    Args:
        tracer: The tracer spans are started with.
        capture_content: Record arguments and results (capped).
        arguments_of: Reads the arguments of the wrapped method.

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_method_scoped(
        "crewai.start_tool",
        lambda tool, args, kwargs: _begin(
            tracer, capture_content, arguments_of, tool, args, kwargs
        ),
    )
