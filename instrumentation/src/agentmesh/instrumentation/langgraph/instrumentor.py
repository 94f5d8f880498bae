"""``LangGraphInstrumentor``: workflow, agent, tool and handoff spans for LangGraph graphs.

Importing this module does not import ``langgraph``; the patches are applied when LangGraph's
modules are imported (at once when they already are).

Patch points, stable across LangGraph 0.3 to 1.x:

- ``langgraph.pregel`` ``Pregel.stream`` / ``Pregel.astream``: the workflow span
  (``invoke`` / ``ainvoke`` run through them);
- the runner's module globals ``run_with_retry`` / ``arun_with_retry``
  (``langgraph.pregel._runner`` in 1.x, ``langgraph.pregel.runner`` before): node spans.
"""

from __future__ import annotations

from collections.abc import Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # pyright: ignore[reportMissingTypeStubs]
    BaseInstrumentor,
)
from opentelemetry.trace import Tracer, TracerProvider

from agentmesh.instrumentation._patching import PatchSet, Wrapper
from agentmesh.instrumentation.langgraph.package import (
    _instruments,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["LangGraphInstrumentor"]

_SCOPE = "agentmesh.instrumentation.langgraph"
_PREGEL_MODULE = "langgraph.pregel"
_RUNNER_MODULES = ("langgraph.pregel._runner", "langgraph.pregel.runner")


def _stream(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.langgraph._workflow import stream_wrapper

    return stream_wrapper(tracer)


def _astream(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.langgraph._workflow import astream_wrapper

    return astream_wrapper(tracer)


def _run(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.langgraph._nodes import run_with_retry_wrapper

    return run_with_retry_wrapper(tracer)


def _arun(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.langgraph._nodes import arun_with_retry_wrapper

    return arun_with_retry_wrapper(tracer)


class LangGraphInstrumentor(BaseInstrumentor):  # pyright: ignore[reportUntypedBaseClass]
    """Instrument LangGraph: one workflow span per graph execution, one span per node.

    Agent nodes get ``invoke_agent {node}`` spans nested under ``invoke_workflow {graph}``,
    with handoff attributes (source, target, kind, context digest and size) when another agent
    ran before them; ``ToolNode`` nodes get ``execute_tool {node}``. The run id is taken from
    baggage (or created) and put into baggage for everything the run calls.

    Example:
        >>> LangGraphInstrumentor().instrumentation_dependencies()
        ('langgraph >= 0.3, < 2',)
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
        patches = PatchSet("langgraph")
        patches.add(_PREGEL_MODULE, "Pregel.stream", lambda: _stream(tracer))
        patches.add(_PREGEL_MODULE, "Pregel.astream", lambda: _astream(tracer))
        for module in _RUNNER_MODULES:
            patches.add(module, "run_with_retry", lambda: _run(tracer), optional=True)
            patches.add(module, "arun_with_retry", lambda: _arun(tracer), optional=True)
        patches.apply()
        self._patches = patches

    def _uninstrument(self, **kwargs: object) -> None:
        if self._patches is not None:
            self._patches.remove()
            self._patches = None
