"""OpenTelemetry instrumentation of the ``openai`` SDK (chat completions).

Importing this package does not import ``openai``.

Example:
    >>> from agentmesh.instrumentation.openai import OpenAIInstrumentor
    >>> OpenAIInstrumentor().instrumentation_dependencies()
    ('openai >= 1.40, < 4',)
"""

from agentmesh.instrumentation.openai.instrumentor import OpenAIInstrumentor

__all__ = ["OpenAIInstrumentor"]
