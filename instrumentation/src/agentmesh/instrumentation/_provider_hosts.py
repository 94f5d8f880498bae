"""Which provider hosts get our trace headers.

W3C ``traceparent`` and ``baggage`` headers carry the run id, task class and routing decision
(:mod:`agentmesh.instrumentation.baggage`). They are worth sending to services that continue the
trace (a gateway, a proxy such as LiteLLM, another of the team's processes), but a public model
API neither reads nor returns them, and the OpenTelemetry baggage guidance warns against sending
baggage to third parties. So by default the headers are not sent to the public provider APIs
listed here, and are sent everywhere else; ``AGENTMESH_PROPAGATE_TO_PUBLIC_PROVIDERS=true``
sends them everywhere.

Example:
    >>> is_public_provider("api.openai.com"), is_public_provider("llm-gateway.internal")
    (True, False)
    >>> is_public_provider("my-team.openai.azure.com")
    True
"""

from __future__ import annotations

from typing import Final

__all__ = ["PUBLIC_PROVIDER_HOSTS", "is_public_provider", "propagate_to_public_providers"]

PUBLIC_PROVIDER_HOSTS: Final = frozenset(
    {
        "api.openai.com",
        "api.anthropic.com",
        "openrouter.ai",
        "generativelanguage.googleapis.com",
        "api.mistral.ai",
        "api.groq.com",
        "api.together.xyz",
        "api.deepseek.com",
        "api.x.ai",
        "api.fireworks.ai",
        "api.cohere.com",
    }
)
"""Public model APIs (hosts) that never see our trace headers unless asked."""

_PUBLIC_SUFFIXES: Final = (".openai.azure.com", ".cognitiveservices.azure.com")


def is_public_provider(host: object) -> bool:
    """Whether ``host`` is a public model API (see :data:`PUBLIC_PROVIDER_HOSTS`).

    Args:
        host: The ``server.address`` of the call (anything else counts as not public).

    Returns:
        ``True`` for a listed host or an Azure OpenAI resource host.
    """
    if not isinstance(host, str):
        return False
    host = host.lower()
    return host in PUBLIC_PROVIDER_HOSTS or host.endswith(_PUBLIC_SUFFIXES)


def propagate_to_public_providers() -> bool:
    """Read ``AGENTMESH_PROPAGATE_TO_PUBLIC_PROVIDERS`` (once per instrumentation; fail-open).

    Returns:
        The setting; ``False`` when the settings cannot be read.
    """
    from agentmesh.instrumentation._failopen import safe_call
    from agentmesh.instrumentation.settings import InstrumentationSettings

    def read() -> bool:
        return InstrumentationSettings.load().propagate_to_public_providers

    return safe_call("settings.propagate_to_public_providers", read) is True
