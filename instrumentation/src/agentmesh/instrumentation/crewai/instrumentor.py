"""``CrewAIInstrumentor``: workflow, agent, tool and handoff spans for CrewAI crews.

Importing this module does not import ``crewai``; the patches are applied when CrewAI's
modules are imported (at once when they already are). Content capture (handoff content, tool
arguments and results) is off by default: ``instrument(capture_content=True)``,
``AGENTMESH_CAPTURE_CONTENT`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.

Patch points (public or long-standing methods, present from CrewAI 1.0):

- ``crewai.crew`` ``Crew.kickoff`` / ``Crew.akickoff``: the workflow span;
- ``crewai.agent`` ``Agent.execute_task`` / ``Agent.aexecute_task``: agent spans (a crew's
  tasks and delegated work both run through them);
- ``crewai.tools.base_tool`` ``BaseTool.run`` / ``arun`` and ``Tool.run`` / ``arun``, and
  ``crewai.tools.structured_tool`` ``CrewStructuredTool.invoke`` / ``ainvoke``: tool spans;
- ``crewai.tools.agent_tools.base_agent_tools`` ``BaseAgentTool._execute``: delegation handoffs.

Why not CrewAI's event bus: it runs synchronous handlers in a thread pool, after the fact, so a
span started from an event can neither be made current for the LLM calls of the step it
describes (they would not nest under it) nor be relied on to end before the crew returns.

LLM calls are not wrapped here: CrewAI's native providers call the OpenAI and Anthropic SDKs
(and LiteLLM calls the OpenAI SDK), whose instrumentors produce the ``chat`` spans; they nest
under the agent span because the agent span is current while the agent runs.
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
from agentmesh.instrumentation.crewai.package import (
    _instruments,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["CrewAIInstrumentor"]

_SCOPE = "agentmesh.instrumentation.crewai"
_CREW_MODULE = "crewai.crew"
_AGENT_MODULE = "crewai.agent"
_TOOL_MODULE = "crewai.tools.base_tool"
_STRUCTURED_TOOL_MODULE = "crewai.tools.structured_tool"
_AGENT_TOOLS_MODULE = "crewai.tools.agent_tools.base_agent_tools"


def _kickoff(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.crewai._workflow import kickoff_wrapper

    return kickoff_wrapper(tracer)


def _akickoff(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.crewai._workflow import akickoff_wrapper

    return akickoff_wrapper(tracer)


def _execute_task(tracer: Tracer, capture: bool) -> Wrapper:
    from agentmesh.instrumentation.crewai._agents import execute_task_wrapper

    return execute_task_wrapper(tracer, capture)


def _aexecute_task(tracer: Tracer, capture: bool) -> Wrapper:
    from agentmesh.instrumentation.crewai._agents import aexecute_task_wrapper

    return aexecute_task_wrapper(tracer, capture)


def _tool(tracer: Tracer, capture: bool, *, invoke: bool = False) -> Wrapper:
    from agentmesh.instrumentation.crewai._tools import (
        invoke_arguments,
        run_arguments,
        tool_wrapper,
    )

    return tool_wrapper(tracer, capture, invoke_arguments if invoke else run_arguments)


def _async_tool(tracer: Tracer, capture: bool, *, invoke: bool = False) -> Wrapper:
    from agentmesh.instrumentation.crewai._tools import (
        async_tool_wrapper,
        invoke_arguments,
        run_arguments,
    )

    return async_tool_wrapper(tracer, capture, invoke_arguments if invoke else run_arguments)


def _delegation(capture: bool) -> Wrapper:
    from agentmesh.instrumentation.crewai._delegation import delegation_wrapper

    return delegation_wrapper(capture)


def _patches(tracer: Tracer, capture: bool) -> PatchSet:
    patches = PatchSet("crewai")
    patches.add(_CREW_MODULE, "Crew.kickoff", lambda: _kickoff(tracer))
    patches.add(_CREW_MODULE, "Crew.akickoff", lambda: _akickoff(tracer), optional=True)
    patches.add(_AGENT_MODULE, "Agent.execute_task", lambda: _execute_task(tracer, capture))
    patches.add(
        _AGENT_MODULE,
        "Agent.aexecute_task",
        lambda: _aexecute_task(tracer, capture),
        optional=True,
    )
    patches.add(_TOOL_MODULE, "BaseTool.run", lambda: _tool(tracer, capture))
    patches.add(_TOOL_MODULE, "BaseTool.arun", lambda: _async_tool(tracer, capture), optional=True)
    patches.add(_TOOL_MODULE, "Tool.run", lambda: _tool(tracer, capture), optional=True)
    patches.add(_TOOL_MODULE, "Tool.arun", lambda: _async_tool(tracer, capture), optional=True)
    patches.add(
        _STRUCTURED_TOOL_MODULE,
        "CrewStructuredTool.invoke",
        lambda: _tool(tracer, capture, invoke=True),
    )
    patches.add(
        _STRUCTURED_TOOL_MODULE,
        "CrewStructuredTool.ainvoke",
        lambda: _async_tool(tracer, capture, invoke=True),
        optional=True,
    )
    patches.add(_AGENT_TOOLS_MODULE, "BaseAgentTool._execute", lambda: _delegation(capture))
    return patches


class CrewAIInstrumentor(BaseInstrumentor):  # pyright: ignore[reportUntypedBaseClass]
    """Instrument CrewAI: one workflow span per kickoff, agent, tool and handoff spans.

    Each kickoff gets ``invoke_workflow {crew}``; each agent executing a task gets
    ``invoke_agent {role}`` (with the task's name and id), carrying a handoff (source, target,
    kind ``delegation`` or ``task_context``, context digest and size) when the work came from
    another agent; each tool execution gets ``execute_tool {tool}``. The run id is taken from
    baggage (or created) and put into baggage for everything the crew calls.

    Example:
        >>> CrewAIInstrumentor().instrumentation_dependencies()
        ('crewai >= 1.0',)
    """

    _patches: PatchSet | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """Return the supported ``crewai`` versions.

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
        patches = _patches(tracer, capture_enabled(kwargs))
        patches.apply()
        self._patches = patches

    def _uninstrument(self, **kwargs: object) -> None:
        if self._patches is not None:
            self._patches.remove()
            self._patches = None
