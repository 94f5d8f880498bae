"""Set up tracing for a process: the provider, the exporter, the instrumentors; once.

Both entry points end here: :func:`init` (one line in the app) and the zero-code configurator
and distro (``agentmesh-instrument``). Everything is fail-open: a wrong setting or a failing
step is logged, and the application runs uninstrumented rather than not at all.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.instrumentation.dependencies import (  # pyright: ignore[reportMissingTypeStubs]
    get_dependency_conflicts,  # pyright: ignore[reportUnknownVariableType]
)
from opentelemetry.instrumentation.instrumentor import (  # pyright: ignore[reportMissingTypeStubs]
    BaseInstrumentor,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from agentmesh.core import ConfigError
from agentmesh.core.log import get_logger
from agentmesh.instrumentation._exporter import GuardedSpanExporter
from agentmesh.instrumentation._processor import BoundedSpanProcessor
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.settings import InstrumentationSettings

__all__ = [
    "build_tracer_provider",
    "configure_tracing",
    "init",
    "instrument_installed",
    "instrumentor_supported",
    "load_settings",
]

_log = get_logger(__name__)

INSTRUMENTORS: tuple[type[BaseInstrumentor], ...] = (  # pyright: ignore[reportUnknownVariableType]
    OpenAIInstrumentor,
    LangGraphInstrumentor,
)
"""Every instrumentor AgentMesh ships, in the order :func:`init` applies them."""


@dataclass(slots=True)
class _State:
    provider: TracerProvider | None = None
    configured: bool = False


_lock = threading.RLock()
_state = _State()
_reported_errors: set[str] = set()


def load_settings(**overrides: object) -> InstrumentationSettings | None:
    """Load the settings; log a clear error and return ``None`` when they are wrong.

    Args:
        **overrides: Values that take precedence over the environment.

    Returns:
        The settings, or ``None`` on a configuration error.
    """
    try:
        return InstrumentationSettings.load(**overrides)
    except ConfigError as exc:
        message = str(exc)
        with _lock:
            first = message not in _reported_errors
            _reported_errors.add(message)
        if first:  # the distro, the configurator and init() all load the settings
            _log.error("agentmesh.invalid_configuration", error=message, action="not instrumenting")
        return None


def build_tracer_provider(settings: InstrumentationSettings) -> TracerProvider:
    """Build a tracer provider exporting over OTLP/gRPC with a bounded shutdown.

    Args:
        settings: Endpoint, service name and timeouts.

    Returns:
        The provider (not set globally).
    """

    def otlp_exporter() -> SpanExporter:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        return OTLPSpanExporter(
            endpoint=settings.endpoint, insecure=True, timeout=settings.export_timeout_s
        )

    exporter = GuardedSpanExporter(otlp_exporter)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    provider.add_span_processor(
        BoundedSpanProcessor(exporter, settings.endpoint, settings.shutdown_timeout_s)
    )
    return provider


def configure_tracing(settings: InstrumentationSettings) -> TracerProvider | None:
    """Build the provider and make it global, once per process.

    When the application already set an SDK provider of its own, that one is kept.

    Args:
        settings: The settings.

    Returns:
        The global SDK provider, or ``None`` when disabled.
    """
    if settings.disabled:
        return None
    with _lock:
        if _state.configured:
            return _state.provider
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            _log.info("agentmesh.using_existing_tracer_provider")
            provider = current
        else:
            provider = build_tracer_provider(settings)
            trace.set_tracer_provider(provider)
            _log.debug(
                "agentmesh.tracing_configured",
                endpoint=settings.endpoint,
                service_name=settings.service_name,
            )
        _state.provider = provider
        _state.configured = True
        return provider


def instrumentor_supported(instrumentor: BaseInstrumentor) -> bool:
    """Tell whether the library an instrumentor targets is installed in a supported version.

    Args:
        instrumentor: The instrumentor.

    Returns:
        Whether it can be applied.
    """
    dependencies: list[str] = list(instrumentor.instrumentation_dependencies())
    return get_dependency_conflicts(dependencies) is None


def instrument_installed(tracer_provider: TracerProvider | None = None) -> list[str]:
    """Apply every AgentMesh instrumentor whose library is installed (skip applied ones).

    Args:
        tracer_provider: Provider for the spans; the global one by default.

    Returns:
        Class names of the instrumentors now active.
    """
    active: list[str] = []
    for cls in INSTRUMENTORS:
        name = cls.__name__
        try:
            instrumentor = cls()
            if not instrumentor.is_instrumented_by_opentelemetry:
                if not instrumentor_supported(instrumentor):
                    continue
                instrumentor.instrument(tracer_provider=tracer_provider, skip_dep_check=True)
            active.append(name)
        except Exception as exc:  # noqa: BLE001 - one failing instrumentor must not stop others
            _log.warning("agentmesh.instrument_failed", instrumentor=name, error=str(exc))
    return active


def init(**overrides: object) -> TracerProvider | None:
    """Instrument this process: export spans to the AgentMesh collector, patch every library.

    Builds a tracer provider (resource ``service.name``, OTLP/gRPC exporter with a bounded
    shutdown) and sets it global, then instruments every installed supported library
    (``openai``, ``langgraph``). Idempotent: later calls return the same provider. Never
    raises: a wrong setting is logged and the application runs uninstrumented. AgentMesh's
    own logs follow the application's logging setup (see :mod:`agentmesh.core.log`).

    Args:
        **overrides: Settings that take precedence over ``AGENTMESH_*`` variables, for
            example ``endpoint="http://collector:4317"`` or ``service_name="research-bot"``.

    Returns:
        The global SDK tracer provider, or ``None`` when disabled or misconfigured.

    Example:
        >>> import agentmesh.instrumentation as am
        >>> am.init(disabled=True) is None
        True
    """
    try:
        settings = load_settings(**overrides)
        if settings is None or settings.disabled:
            return None
        with _lock:
            provider = configure_tracing(settings)
            instrument_installed(provider)
            return provider
    except Exception as exc:  # noqa: BLE001 - init() never raises into the application
        _log.error("agentmesh.init_failed", error_type=type(exc).__name__, error=str(exc))
        return None
