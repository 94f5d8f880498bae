"""``LangGraphInstrumentor``: workflow, agent, tool and handoff spans for LangGraph graphs.

Importing this module does not import ``langgraph``; the patches are applied when LangGraph's
modules are imported (at once when they already are).

Patch points, the same from LangGraph 0.5 (the oldest supported: 0.3 does not report interrupts in
a graph's output, so its pauses would go unmarked) to 1.x:

- ``langgraph.pregel`` ``Pregel.stream`` / ``Pregel.astream``: the workflow span
  (``invoke`` / ``ainvoke`` run through them);
- the runner's module globals ``run_with_retry`` / ``arun_with_retry``
  (``langgraph.pregel._runner`` in 1.x, ``langgraph.pregel.runner`` before): node spans;
- ``BranchSpec._finish`` (``langgraph.graph._branch`` in 1.x, ``Branch._finish`` in
  ``langgraph.graph.branch`` before): which targets a conditional edge chose;
- ``ToolNode._run_one`` / ``ToolNode._arun_one`` (``langgraph.prebuilt.tool_node``): one span
  per tool call.

``instrument(capture_content=True)`` (or ``AGENTMESH_CAPTURE_CONTENT`` /
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``) records the state that crossed each
handoff and the arguments and results of tool calls, each capped at 16 KiB.
"""

from __future__ import annotations

from collections.abc import Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # pyright: ignore[reportMissingTypeStubs]
    BaseInstrumentor,
)
from opentelemetry.trace import Tracer, TracerProvider

from agentmesh.instrumentation._content import capture_enabled
from agentmesh.instrumentation._patching import PatchSet, Wrapper
from agentmesh.instrumentation.langgraph.package import (
    _instruments,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["LangGraphInstrumentor"]

_SCOPE = "agentmesh.instrumentation.langgraph"
_PREGEL_MODULE = "langgraph.pregel"
_RUNNER_MODULES = ("langgraph.pregel._runner", "langgraph.pregel.runner")
_BRANCHES = (
    ("langgraph.graph._branch", "BranchSpec._finish"),
    ("langgraph.graph.branch", "Branch._finish"),
)
_TOOL_NODE_MODULE = "langgraph.prebuilt.tool_node"


def _stream(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.langgraph._workflow import stream_wrapper

    return stream_wrapper(tracer)


def _astream(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.langgraph._workflow import astream_wrapper

    return astream_wrapper(tracer)


def _run(tracer: Tracer, capture_content: bool) -> Wrapper:
    from agentmesh.instrumentation.langgraph._nodes import NodeOptions, run_with_retry_wrapper

    return run_with_retry_wrapper(tracer, NodeOptions(capture_content=capture_content))


def _arun(tracer: Tracer, capture_content: bool) -> Wrapper:
    from agentmesh.instrumentation.langgraph._nodes import NodeOptions, arun_with_retry_wrapper

    return arun_with_retry_wrapper(tracer, NodeOptions(capture_content=capture_content))


def _branch() -> Wrapper:
    from agentmesh.instrumentation.langgraph._routes import branch_finish_wrapper

    return branch_finish_wrapper()


def _tool(tracer: Tracer, capture_content: bool) -> Wrapper:
    from agentmesh.instrumentation.langgraph._tools import run_one_wrapper

    return run_one_wrapper(tracer, capture_content)


def _atool(tracer: Tracer, capture_content: bool) -> Wrapper:
    from agentmesh.instrumentation.langgraph._tools import arun_one_wrapper

    return arun_one_wrapper(tracer, capture_content)


class LangGraphInstrumentor(BaseInstrumentor):  # pyright: ignore[reportUntypedBaseClass]
    """Instrument LangGraph: one workflow span per graph execution, one span per node.

    Agent nodes get ``invoke_agent {node}`` spans nested under ``invoke_workflow {graph}``,
    with handoff attributes (source, target, kind, context digest and size) when another agent
    handed work to them; ``ToolNode`` nodes get ``execute_tool {node}`` with one
    ``execute_tool {tool}`` span per tool call; subgraphs get nested workflow spans. The run id
    and task class are taken from baggage (or created) and put into baggage for everything the
    run calls.

    Example:
        >>> LangGraphInstrumentor().instrumentation_dependencies()
        ('langgraph >= 0.5, < 2',)
    """

    _patches: PatchSet | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """Return the supported ``langgraph`` versions.

        Returns:
            Requirement specifiers.
        """
        return _instruments

    def _instrument(self, **kwargs: object) -> None:
        provider = kwargs.get("tracer_provider")
        tracer = trace.get_tracer(
            _SCOPE,
            tracer_provider=provider if isinstance(provider, TracerProvider) else None,
        )
        capture = capture_enabled(kwargs)
        patches = PatchSet("langgraph")
        patches.add(_PREGEL_MODULE, "Pregel.stream", lambda: _stream(tracer))
        patches.add(_PREGEL_MODULE, "Pregel.astream", lambda: _astream(tracer))
        for module in _RUNNER_MODULES:
            patches.add(module, "run_with_retry", lambda: _run(tracer, capture), optional=True)
            patches.add(module, "arun_with_retry", lambda: _arun(tracer, capture), optional=True)
        for module, path in _BRANCHES:
            patches.add(module, path, _branch, optional=True)
        tool_node = _TOOL_NODE_MODULE
        patches.add(tool_node, "ToolNode._run_one", lambda: _tool(tracer, capture), optional=True)
        patches.add(tool_node, "ToolNode._arun_one", lambda: _atool(tracer, capture), optional=True)
        patches.apply()
        self._patches = patches

    def _uninstrument(self, **kwargs: object) -> None:
        if self._patches is not None:
            self._patches.remove()
            self._patches = None
