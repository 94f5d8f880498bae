"""Tool-call spans: one ``execute_tool {tool}`` span per tool call a ``ToolNode`` runs.

``ToolNode._run_one`` / ``ToolNode._arun_one`` run one tool call each (in LangGraph's thread
pool, or gathered as coroutines); they are wrapped. The span carries the tool's name, the call
id and type (``function``), and the digests of the call's arguments and of its result (always:
loop detection compares calls by them); with content capture on, the arguments and result
themselves, each capped. An exception is recorded and re-raised; an error the ``ToolNode``
turned into an error ``ToolMessage`` marks the span failed too (``error.type`` ``_OTHER``); an
interrupt is no error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_CONTENT_TRUNCATED,
    AGENTMESH_FRAMEWORK,
    AGENTMESH_LANGGRAPH_INTERRUPTED,
    AGENTMESH_TOOL_ARGUMENTS_DIGEST,
    AGENTMESH_TOOL_RESULT_DIGEST,
    ERROR_TYPE,
    GEN_AI_OPERATION_NAME,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_ID,
    GEN_AI_TOOL_CALL_RESULT,
    GEN_AI_TOOL_NAME,
    GEN_AI_TOOL_TYPE,
    GEN_AI_WORKFLOW_NAME,
    Operation,
)
from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._content import CONTENT_CAP_BYTES, scrub
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation._scoped import async_scoped, sync_scoped
from agentmesh.instrumentation.handoff import bounded_digest, canonical_json, capped_text
from agentmesh.instrumentation.langgraph._execution import current_execution
from agentmesh.instrumentation.langgraph._interrupts import BubbleUp, classify
from agentmesh.instrumentation.langgraph._workflow import FRAMEWORK

__all__ = ["arun_one_wrapper", "run_one_wrapper"]

_TOOL_TYPE: Final = "function"
_OTHER_ERROR: Final = "_OTHER"


def _get(obj: object, key: str) -> object:
    if isinstance(obj, Mapping):
        return cast("Mapping[str, object]", obj).get(key)
    return getattr(obj, key, None)


def _capped(value: object) -> tuple[str, bool]:
    text = value if isinstance(value, str) else canonical_json(scrub(value))
    return capped_text(text, CONTENT_CAP_BYTES)


@dataclass(frozen=True, slots=True)
class _ToolRun:
    span: Span
    context: Context
    capture_content: bool

    def finish(self, result: object, error: BaseException | None) -> None:
        if error is not None:
            kind = classify(error)
            if kind is BubbleUp.INTERRUPT:
                with _failopen.guarded("langgraph.tool_interrupted"):
                    self.span.set_attribute(AGENTMESH_LANGGRAPH_INTERRUPTED, True)
            elif kind is None:
                _failopen.record_error(self.span, error)
        else:
            with _failopen.guarded("langgraph.tool_result"):
                self._result(result)
        _failopen.end_span(self.span)

    def _result(self, result: object) -> None:
        if _get(result, "status") == "error":
            content = _get(result, "content")
            self.span.set_status(Status(StatusCode.ERROR, str(content)[:256]))
            self.span.set_attribute(ERROR_TYPE, _OTHER_ERROR)
        content = _get(result, "content")
        value: object = content if content is not None else result  # not the call id
        self.span.set_attribute(AGENTMESH_TOOL_RESULT_DIGEST, bounded_digest(value))
        if not self.capture_content:
            return
        text, truncated = _capped(value)
        self.span.set_attribute(GEN_AI_TOOL_CALL_RESULT, text)
        if truncated:
            self.span.set_attribute(AGENTMESH_CONTENT_TRUNCATED, True)


def _start(
    tracer: Tracer, capture_content: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> _ToolRun | None:
    call: object = args[0] if args else kwargs.get("call")
    name = _get(call, "name")
    if not isinstance(name, str) or not name:
        return None
    attributes: dict[str, AttributeValue] = {
        GEN_AI_OPERATION_NAME: Operation.EXECUTE_TOOL,
        GEN_AI_TOOL_NAME: name,
        GEN_AI_TOOL_TYPE: _TOOL_TYPE,
        AGENTMESH_FRAMEWORK: FRAMEWORK,
    }
    call_id = _get(call, "id")
    if isinstance(call_id, str) and call_id:
        attributes[GEN_AI_TOOL_CALL_ID] = call_id
    execution = current_execution()
    if execution is not None:
        attributes[GEN_AI_WORKFLOW_NAME] = execution.name
    arguments = _get(call, "args")
    attributes[AGENTMESH_TOOL_ARGUMENTS_DIGEST] = bounded_digest(arguments)
    if capture_content:
        text, truncated = _capped(arguments)
        attributes[GEN_AI_TOOL_CALL_ARGUMENTS] = text
        if truncated:
            attributes[AGENTMESH_CONTENT_TRUNCATED] = True
    span = tracer.start_span(
        f"{Operation.EXECUTE_TOOL} {name}", kind=SpanKind.INTERNAL, attributes=attributes
    )
    return _ToolRun(span, trace.set_span_in_context(span), capture_content)


def run_one_wrapper(tracer: Tracer, capture_content: bool) -> Wrapper:
    """Build the wrapper of ``ToolNode._run_one``.

    Args:
        tracer: The tracer spans are started with.
        capture_content: Record arguments and results.

    Returns:
        A wrapt wrapper.
    """
    return sync_scoped(
        "langgraph.start_tool", lambda args, kwargs: _start(tracer, capture_content, args, kwargs)
    )


def arun_one_wrapper(tracer: Tracer, capture_content: bool) -> Wrapper:
    """Build the wrapper of ``ToolNode._arun_one``.

    Args:
        tracer: The tracer spans are started with.
        capture_content: Record arguments and results.

    Returns:
        A wrapt wrapper returning a coroutine.
    """
    return async_scoped(
        "langgraph.start_tool", lambda args, kwargs: _start(tracer, capture_content, args, kwargs)
    )
