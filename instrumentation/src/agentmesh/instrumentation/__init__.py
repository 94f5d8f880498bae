"""AgentMesh instrumentation: OpenTelemetry spans for LLM providers and agent frameworks.

One line instruments an application (or zero, with ``agentmesh-instrument python app.py``)::

    import agentmesh.instrumentation

    agentmesh.instrumentation.init(service_name="research-bot")

:func:`init` exports spans over OTLP/gRPC to the AgentMesh collector (``AGENTMESH_ENDPOINT``)
and patches every installed supported library: ``openai`` and ``anthropic`` (``chat {model}``
and ``embeddings {model}`` spans with tokens, cost and time to first chunk), ``langgraph`` and
``crewai`` (workflow, agent, tool and handoff spans). Plain code declares its run and agents
with :func:`workflow` and :func:`agent`.
It never raises, and the application runs unchanged when the collector is down. The
instrumentors can also be applied one by one, as any OpenTelemetry instrumentor.

Names are loaded on first use, so importing this package is cheap (the zero-code launcher
imports it) and imports none of the instrumented libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.instrumentation._init import init
    from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
    from agentmesh.instrumentation.baggage import current_task_class, task_class
    from agentmesh.instrumentation.crewai import CrewAIInstrumentor
    from agentmesh.instrumentation.handoff import ContextDigest, context_digest
    from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
    from agentmesh.instrumentation.openai import OpenAIInstrumentor
    from agentmesh.instrumentation.propagation import continue_from, extract_context
    from agentmesh.instrumentation.run_context import current_run_id, run_scope, with_run_id
    from agentmesh.instrumentation.settings import InstrumentationSettings
    from agentmesh.instrumentation.steps import agent, workflow

__all__ = [
    "AnthropicInstrumentor",
    "ContextDigest",
    "CrewAIInstrumentor",
    "InstrumentationSettings",
    "LangGraphInstrumentor",
    "OpenAIInstrumentor",
    "agent",
    "context_digest",
    "continue_from",
    "current_run_id",
    "current_task_class",
    "extract_context",
    "init",
    "run_scope",
    "task_class",
    "with_run_id",
    "workflow",
]

_EXPORTS: dict[str, str] = {
    "ContextDigest": "agentmesh.instrumentation.handoff",
    "InstrumentationSettings": "agentmesh.instrumentation.settings",
    "AnthropicInstrumentor": "agentmesh.instrumentation.anthropic",
    "CrewAIInstrumentor": "agentmesh.instrumentation.crewai",
    "LangGraphInstrumentor": "agentmesh.instrumentation.langgraph",
    "OpenAIInstrumentor": "agentmesh.instrumentation.openai",
    "context_digest": "agentmesh.instrumentation.handoff",
    "continue_from": "agentmesh.instrumentation.propagation",
    "current_run_id": "agentmesh.instrumentation.run_context",
    "current_task_class": "agentmesh.instrumentation.baggage",
    "extract_context": "agentmesh.instrumentation.propagation",
    "init": "agentmesh.instrumentation._init",
    "run_scope": "agentmesh.instrumentation.run_context",
    "task_class": "agentmesh.instrumentation.baggage",
    "with_run_id": "agentmesh.instrumentation.run_context",
    "agent": "agentmesh.instrumentation.steps",
    "workflow": "agentmesh.instrumentation.steps",
}


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
