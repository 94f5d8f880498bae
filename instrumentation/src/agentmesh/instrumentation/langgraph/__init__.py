"""OpenTelemetry instrumentation of LangGraph: workflows, agent steps, tools and handoffs.

Importing this package does not import ``langgraph``.

Example:
    >>> from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
    >>> LangGraphInstrumentor().instrumentation_dependencies()
    ('langgraph >= 0.5, < 2',)
"""

from agentmesh.instrumentation.langgraph.instrumentor import LangGraphInstrumentor

__all__ = ["LangGraphInstrumentor"]
