"""``AnthropicInstrumentor``: spans and metrics for every messages call of the ``anthropic`` SDK.

Importing this module does not import ``anthropic``; the patches are applied when the SDK's
resource modules are imported (at once when they already are).
"""

from __future__ import annotations

import os
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
from agentmesh.instrumentation.anthropic.package import (
    _instruments,  # pyright: ignore[reportPrivateUsage]
)
from agentmesh.instrumentation.openai._call import Instruments
from agentmesh.instrumentation.routing import install_provider_hooks

__all__ = ["AnthropicInstrumentor"]

_SCOPE = "agentmesh.instrumentation.anthropic"

# (module, optional): each holds Messages and AsyncMessages with create, parse and stream.
_MODULES: Final = (
    ("anthropic.resources.messages", False),
    ("anthropic.resources.beta.messages", True),
)
_METHODS: Final = (("create", False), ("parse", True), ("stream", False))


def _factory(instruments: Instruments, method: str, asynchronous: bool) -> Wrapper:
    from agentmesh.instrumentation.anthropic import _endpoints
    from agentmesh.instrumentation.openai import _wrappers

    if method == "stream":
        return _endpoints.stream_helper_wrapper(instruments, asynchronous)
    if asynchronous:
        return _wrappers.async_wrapper(instruments, _endpoints.MESSAGES)
    return _wrappers.sync_wrapper(instruments, _endpoints.MESSAGES)


def _bind(instruments: Instruments, method: str, asynchronous: bool) -> WrapperFactory:
    return lambda: _factory(instruments, method, asynchronous)


_SDK_TRACING_ENV = "ANTHROPIC_OPEN_TELEMETRY"
"""The anthropic SDK's switch for its own OpenTelemetry spans."""


class AnthropicInstrumentor(BaseInstrumentor):  # pyright: ignore[reportUntypedBaseClass]
    """Instrument ``anthropic``: a ``chat {model}`` CLIENT span and GenAI metrics per call.

    Covers, sync and async, in ``messages`` and (where present) ``beta.messages``: ``create``
    (plain and ``stream=True``), ``parse``, and the ``stream(...)`` context-manager helper;
    ``with_raw_response`` variants included. Streams end their span exactly once: on
    exhaustion, ``close()``, leaving the ``with`` block, an error, garbage collection, or,
    still open, the process's exit.
    Errors are recorded and re-raised unchanged; the instrumentation's own failures are
    logged and never reach the application.

    Keyword arguments of ``instrument()``: ``tracer_provider``, ``meter_provider`` and
    ``capture_content``.

    Example:
        >>> AnthropicInstrumentor().instrumentation_dependencies()
        ('anthropic >= 0.40',)
    """

    _patches: PatchSet | None = None
    _silenced_sdk_tracing: bool = False

    def instrumentation_dependencies(self) -> Collection[str]:
        """Return the supported ``anthropic`` versions.

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
        patches = PatchSet("anthropic")
        for module, module_optional in _MODULES:
            for method, method_optional in _METHODS:
                for prefix, asynchronous in (("", False), ("Async", True)):
                    patches.add(
                        module,
                        f"{prefix}Messages.{method}",
                        _bind(instruments, method, asynchronous),
                        optional=module_optional or method_optional,
                        stack=True,  # one span per call: ours wraps a peer's (see _dedupe)
                    )
        patches.apply()
        # Calls ask the in-process router (a no-op while AGENTMESH_ROUTING_MODE is off).
        install_provider_hooks()
        # Calls still open at exit (an abandoned stream) end before the providers export.
        end_at_exit()
        self._patches = patches
        # anthropic >= 2 traces on its own into the global provider: one span per call, not
        # two. Clients created from now on read this; an explicit choice of the app wins.
        if _SDK_TRACING_ENV not in os.environ:
            os.environ[_SDK_TRACING_ENV] = "false"
            self._silenced_sdk_tracing = True

    def _uninstrument(self, **kwargs: object) -> None:
        if self._patches is not None:
            self._patches.remove()
            self._patches = None
        if self._silenced_sdk_tracing:
            os.environ.pop(_SDK_TRACING_ENV, None)
            self._silenced_sdk_tracing = False
