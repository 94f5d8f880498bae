"""OpenTelemetry instrumentation of CrewAI: crews, flows, agents, tasks, tools and delegation.

Importing this package does not import ``crewai``.

Example:
    >>> from agentmesh.instrumentation.crewai import CrewAIInstrumentor
    >>> CrewAIInstrumentor().instrumentation_dependencies()
    ('crewai >= 1.0',)
"""

from agentmesh.instrumentation.crewai.instrumentor import CrewAIInstrumentor

__all__ = ["CrewAIInstrumentor"]
