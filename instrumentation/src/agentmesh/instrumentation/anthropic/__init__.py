"""OpenTelemetry instrumentation of the ``anthropic`` SDK (messages, beta messages).

Importing this package does not import ``anthropic``.

Example:
    >>> from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
    >>> AnthropicInstrumentor().instrumentation_dependencies()
    ('anthropic >= 0.40',)
"""

from agentmesh.instrumentation.anthropic.instrumentor import AnthropicInstrumentor

__all__ = ["AnthropicInstrumentor"]
