"""AgentMesh instrumentation: OpenTelemetry spans for LLM providers and agent frameworks.

One line instruments an application (or zero, with ``agentmesh-instrument python app.py``)::

    import agentmesh.instrumentation

    agentmesh.instrumentation.init(service_name="research-bot")

:func:`init` exports spans over OTLP/gRPC to the AgentMesh collector (``AGENTMESH_ENDPOINT``)
and patches every installed supported library: ``openai`` (``chat {model}`` spans with tokens,
cost and time to first chunk) and ``langgraph`` (workflow, agent, tool and handoff spans).
It never raises, and the application runs unchanged when the collector is down. The
instrumentors can also be applied one by one, as any OpenTelemetry instrumentor.

Names are loaded on first use, so importing this package is cheap (the zero-code launcher
imports it) and imports neither ``openai`` nor ``langgraph``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentmesh.instrumentation._setup import init
    from agentmesh.instrumentation.handoff import ContextDigest, context_digest
    from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
    from agentmesh.instrumentation.openai import OpenAIInstrumentor
    from agentmesh.instrumentation.run_context import current_run_id, with_run_id
    from agentmesh.instrumentation.settings import InstrumentationSettings

__all__ = [
    "ContextDigest",
    "InstrumentationSettings",
    "LangGraphInstrumentor",
    "OpenAIInstrumentor",
    "context_digest",
    "current_run_id",
    "init",
    "with_run_id",
]

_EXPORTS: dict[str, str] = {
    "ContextDigest": "agentmesh.instrumentation.handoff",
    "InstrumentationSettings": "agentmesh.instrumentation.settings",
    "LangGraphInstrumentor": "agentmesh.instrumentation.langgraph",
    "OpenAIInstrumentor": "agentmesh.instrumentation.openai",
    "context_digest": "agentmesh.instrumentation.handoff",
    "current_run_id": "agentmesh.instrumentation.run_context",
    "init": "agentmesh.instrumentation._setup",
    "with_run_id": "agentmesh.instrumentation.run_context",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
