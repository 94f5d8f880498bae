"""``OpenAIInstrumentor``: spans for every chat-completions call of the ``openai`` SDK.

Importing this module does not import ``openai``; the patches are applied when the SDK's
chat-completions module is imported (at once when it already is).
"""

from __future__ import annotations

from collections.abc import Collection

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import (  # pyright: ignore[reportMissingTypeStubs]
    BaseInstrumentor,
)
from opentelemetry.trace import Tracer, TracerProvider

from agentmesh.instrumentation._patching import PatchSet, Wrapper
from agentmesh.instrumentation.openai.package import (
    _instruments,  # pyright: ignore[reportPrivateUsage]
)

__all__ = ["OpenAIInstrumentor"]

_MODULE = "openai.resources.chat.completions"
_SCOPE = "agentmesh.instrumentation.openai"


def _sync_factory(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.openai._wrappers import chat_wrapper

    return chat_wrapper(tracer)


def _async_factory(tracer: Tracer) -> Wrapper:
    from agentmesh.instrumentation.openai._wrappers import async_chat_wrapper

    return async_chat_wrapper(tracer)


class OpenAIInstrumentor(BaseInstrumentor):  # pyright: ignore[reportUntypedBaseClass]
    """Instrument ``openai``: a ``chat {model}`` CLIENT span per chat-completions call.

    Covers ``Completions.create`` and ``AsyncCompletions.create``, streamed or not (a streamed
    response is returned as a proxy that ends the span when the stream ends, is closed, or is
    garbage-collected). Errors are recorded and re-raised unchanged; the instrumentation's own
    failures are logged and never reach the application.

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
        patches = PatchSet("openai")
        patches.add(_MODULE, "Completions.create", lambda: _sync_factory(tracer))
        patches.add(_MODULE, "AsyncCompletions.create", lambda: _async_factory(tracer))
        patches.apply()
        self._patches = patches

    def _uninstrument(self, **kwargs: object) -> None:
        if self._patches is not None:
            self._patches.remove()
            self._patches = None
