"""``OpenAIInstrumentor``: spans and metrics for every model call of the ``openai`` SDK.

Importing this module does not import ``openai``; the patches are applied when the SDK's
resource modules are imported (at once when they already are).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # pyright: ignore[reportMissingTypeStubs]
    BaseInstrumentor,
)
from opentelemetry.trace import TracerProvider

from agentmesh.instrumentation._content import capture_enabled
from agentmesh.instrumentation._metrics import GenAIMetrics, meter_provider_from
from agentmesh.instrumentation._open_calls import end_at_exit
from agentmesh.instrumentation._patching import PatchSet, Wrapper, WrapperFactory
from agentmesh.instrumentation._provider_hosts import propagate_to_public_providers
from agentmesh.instrumentation.openai._call import Instruments
from agentmesh.instrumentation.openai.package import (
    _instruments,  # pyright: ignore[reportPrivateUsage]
)
from agentmesh.instrumentation.routing import install_provider_hooks

__all__ = ["OpenAIInstrumentor"]

_SCOPE = "agentmesh.instrumentation.openai"

# (module, class, method, endpoint, optional)
_TARGETS: Final = (
    ("openai.resources.chat.completions", "Completions", "create", "CHAT", False),
    ("openai.resources.chat.completions", "Completions", "parse", "CHAT", True),
    ("openai.resources.beta.chat.completions", "Completions", "parse", "CHAT", True),
    ("openai.resources.embeddings", "Embeddings", "create", "EMBEDDINGS", False),
    ("openai.resources.responses", "Responses", "create", "RESPONSES", True),
    ("openai.resources.responses", "Responses", "parse", "RESPONSES", True),
    ("openai.resources.beta.responses", "Responses", "create", "RESPONSES", True),
)


def _factory(instruments: Instruments, endpoint: str, asynchronous: bool) -> Wrapper:
    from agentmesh.instrumentation.openai import _endpoints, _wrappers

    target: _wrappers.Endpoint = getattr(_endpoints, endpoint)
    if asynchronous:
        return _wrappers.async_wrapper(instruments, target)
    return _wrappers.sync_wrapper(instruments, target)


class OpenAIInstrumentor(BaseInstrumentor):  # pyright: ignore[reportUntypedBaseClass]
    """Instrument ``openai``: a CLIENT span and GenAI metrics per model call.

    Covers, sync and async: ``chat.completions.create`` (plain and streamed) and ``parse``,
    the ``chat.completions.stream`` helper, ``responses.create`` (plain and streamed),
    ``parse`` and the ``responses.stream`` helper (``chat {model}`` spans), and
    ``embeddings.create`` (``embeddings {model}``); ``with_raw_response`` variants included. A
    streamed response ends the span when the stream ends, is closed, or is garbage-collected,
    or, still open, when the process exits. Errors are recorded and re-raised unchanged; the
    instrumentation's own failures are logged and never reach the application.

    Keyword arguments of ``instrument()``: ``tracer_provider``, ``meter_provider`` and
    ``capture_content`` (default: ``AGENTMESH_CAPTURE_CONTENT`` when set, else
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, else off).

    Example:
        >>> OpenAIInstrumentor().instrumentation_dependencies()
        ('openai >= 1.40, < 4',)
    """

    _patches: PatchSet | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """Return the supported ``openai`` versions.

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
        instruments = Instruments(
            tracer,
            GenAIMetrics.create(meter_provider_from(kwargs), _SCOPE),
            capture_enabled(kwargs),
            propagate_to_public_providers(),
        )
        patches = PatchSet("openai")
        for module, cls, method, endpoint, optional in _TARGETS:
            for prefix, asynchronous in (("", False), ("Async", True)):
                patches.add(
                    module,
                    f"{prefix}{cls}.{method}",
                    _bind(instruments, endpoint, asynchronous),
                    optional=optional,
                    stack=True,  # one span per call: ours wraps a peer's (see _dedupe)
                )
        patches.apply()
        # Calls ask the in-process router (a no-op while AGENTMESH_ROUTING_MODE is off).
        install_provider_hooks()
        # Calls still open at exit (an abandoned stream) end before the providers export.
        end_at_exit()
        self._patches = patches

    def _uninstrument(self, **kwargs: object) -> None:
        if self._patches is not None:
            self._patches.remove()
            self._patches = None


def _bind(instruments: Instruments, endpoint: str, asynchronous: bool) -> WrapperFactory:
    return lambda: _factory(instruments, endpoint, asynchronous)
