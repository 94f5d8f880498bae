"""``CrewAIInstrumentor``: workflow, agent, tool and handoff spans for CrewAI crews and flows.

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
- ``crewai.tools.agent_tools.base_agent_tools`` ``BaseAgentTool._execute``: delegation handoffs;
- ``crewai.agent`` ``Agent.kickoff`` / ``kickoff_async`` / ``akickoff``: agents without a crew;
- ``crewai.flow.flow`` ``Flow.kickoff_async``: the flow's workflow span (``kickoff`` and
  ``akickoff`` go through it); ``Flow.resume_async`` (``resume`` goes through it; optional): a
  run of its own for a flow resumed after human feedback; and the flow engine's long-standing
  internals (present from
  CrewAI 1.0 to 1.15): ``Flow._execute_method`` (one step span per method execution),
  ``Flow._find_triggered_methods`` and ``Flow._execute_single_listener`` (which trigger fired
  which listener with what: the handoffs between methods).

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
_FLOW_MODULE = "crewai.flow.flow"


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


def _agent_kickoff(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.crewai._kickoff import kickoff_wrapper

    return kickoff_wrapper(tracer)


def _agent_async_kickoff(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.crewai._kickoff import async_kickoff_wrapper

    return async_kickoff_wrapper(tracer)


def _flow_kickoff(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.crewai._flows import flow_kickoff_wrapper

    return flow_kickoff_wrapper(tracer)


def _flow_resume(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.crewai._flows import flow_resume_wrapper

    return flow_resume_wrapper(tracer)


def _flow_method(tracer: Tracer, capture: bool) -> Wrapper:
    from agentmesh.instrumentation.crewai._flow_steps import execute_method_wrapper

    return execute_method_wrapper(tracer, capture)


def _flow_triggered() -> Wrapper:
    from agentmesh.instrumentation.crewai._flow_steps import find_triggered_wrapper

    return find_triggered_wrapper()


def _flow_listener() -> Wrapper:
    from agentmesh.instrumentation.crewai._flow_steps import single_listener_wrapper

    return single_listener_wrapper()


def _flow_patches(patches: PatchSet, tracer: Tracer, capture: bool) -> None:
    patches.add(_AGENT_MODULE, "Agent.kickoff", lambda: _agent_kickoff(tracer))
    patches.add(_AGENT_MODULE, "Agent.kickoff_async", lambda: _agent_async_kickoff(tracer))
    patches.add(
        _AGENT_MODULE, "Agent.akickoff", lambda: _agent_async_kickoff(tracer), optional=True
    )
    patches.add(_FLOW_MODULE, "Flow.kickoff_async", lambda: _flow_kickoff(tracer))
    patches.add(_FLOW_MODULE, "Flow.resume_async", lambda: _flow_resume(tracer), optional=True)
    patches.add(_FLOW_MODULE, "Flow._execute_method", lambda: _flow_method(tracer, capture))
    patches.add(_FLOW_MODULE, "Flow._find_triggered_methods", _flow_triggered)
    patches.add(_FLOW_MODULE, "Flow._execute_single_listener", _flow_listener)


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
    _flow_patches(patches, tracer, capture)
    return patches


class CrewAIInstrumentor(BaseInstrumentor):  # pyright: ignore[reportUntypedBaseClass]
    """Instrument CrewAI: one workflow span per kickoff, agent, step, tool and handoff spans.

    Each crew or flow kickoff gets ``invoke_workflow {crew or flow}``; each flow method
    execution gets ``invoke_node {method}``, carrying a handoff (kind ``edge`` or
    ``conditional``) from the method or router that fired it; each agent kicked off without
    a crew gets ``invoke_agent {role}``; each agent executing a task gets
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
