"""Set up tracing for a process: the provider, the exporter, the instrumentors; once.

Both entry points end here: :func:`init` (one line in the app) and the zero-code configurator
and distro (``agentmesh-instrument``). Everything is fail-open: a wrong setting or a failing
step is logged, and the application runs uninstrumented rather than not at all.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Final

from opentelemetry import trace
from opentelemetry.instrumentation.dependencies import (  # pyright: ignore[reportMissingTypeStubs]
    get_dependency_conflicts,  # pyright: ignore[reportUnknownVariableType]
)
from opentelemetry.instrumentation.environment_variables import (  # pyright: ignore[reportMissingTypeStubs]
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)
from opentelemetry.instrumentation.instrumentor import (  # pyright: ignore[reportMissingTypeStubs]
    BaseInstrumentor,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from agentmesh.core.log import get_logger
from agentmesh.instrumentation._baggage_processor import BaggageSpanProcessor
from agentmesh.instrumentation._exporter import GuardedSpanExporter
from agentmesh.instrumentation._markers import StepMarkerProcessor
from agentmesh.instrumentation._processor import BoundedSpanProcessor
from agentmesh.instrumentation.anthropic import AnthropicInstrumentor
from agentmesh.instrumentation.crewai import CrewAIInstrumentor
from agentmesh.instrumentation.langgraph import LangGraphInstrumentor
from agentmesh.instrumentation.openai import OpenAIInstrumentor
from agentmesh.instrumentation.settings import (
    InstrumentationSettings,
    check_logging_settings,
    endpoint_port_hint,
    load_or_report,
)

__all__ = [
    "build_tracer_provider",
    "configure_tracing",
    "disabled_instrumentations",
    "init",
    "instrument_installed",
    "instrumentation_disabled",
    "instrumentor_supported",
    "load_settings",
]

_log = get_logger(__name__)

INSTRUMENTORS: tuple[type[BaseInstrumentor], ...] = (  # pyright: ignore[reportUnknownVariableType]
    OpenAIInstrumentor,
    AnthropicInstrumentor,
    LangGraphInstrumentor,
    CrewAIInstrumentor,
)
"""Instrumentors applied when no ``opentelemetry_instrumentor`` entry point is registered."""

_ENTRY_POINT_GROUP: Final = "opentelemetry_instrumentor"
_OWN_PACKAGE: Final = "agentmesh.instrumentation."
_ENTRY_POINT_PREFIX: Final = "agentmesh_"
_ALL: Final = "*"
_FALLBACK_NAMES: Final = {
    "OpenAIInstrumentor": "agentmesh_openai",
    "AnthropicInstrumentor": "agentmesh_anthropic",
    "LangGraphInstrumentor": "agentmesh_langgraph",
    "CrewAIInstrumentor": "agentmesh_crewai",
}


@dataclass(slots=True)
class _State:
    provider: TracerProvider | None = None
    configured: bool = False


_lock = threading.RLock()
_state = _State()


def load_settings(**overrides: object) -> InstrumentationSettings | None:
    """Load the settings; log a clear error and return ``None`` when they are wrong.

    The distro, the configurator and ``init()`` all load the settings: each wrong value is
    logged once per process (:func:`~agentmesh.instrumentation.settings.load_or_report`), and
    the background clients reading them later say nothing more. A wrong
    ``AGENTMESH_LOG_LEVEL`` or ``AGENTMESH_LOG_FORMAT`` is logged too, and leaves the app
    instrumented.

    Args:
        **overrides: Values that take precedence over the environment.

    Returns:
        The settings, or ``None`` on a configuration error.
    """
    check_logging_settings()
    return load_or_report(**overrides)


def build_tracer_provider(settings: InstrumentationSettings) -> TracerProvider:
    """Build a tracer provider exporting over OTLP/gRPC with a bounded shutdown.

    Every span also gets the AgentMesh baggage of its context (run id, task class…) as
    attributes (:class:`~agentmesh.instrumentation._baggage_processor.BaggageSpanProcessor`);
    with ``step_markers`` on, a step span's start exports a start marker through the same
    batch processor (:class:`~agentmesh.instrumentation._markers.StepMarkerProcessor`).

    Args:
        settings: Endpoint, service name and timeouts.

    Returns:
        The provider (not set globally).
    """

    def otlp_exporter() -> SpanExporter:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter,
        )

        # plaintext unless the endpoint is https:// (then the OTEL_EXPORTER_OTLP_*CERTIFICATE
        # variables apply, as to the control and route-table clients: agentmesh.core.tls)
        return OTLPSpanExporter(
            endpoint=settings.endpoint,
            insecure=not settings.endpoint.startswith("https://"),
            timeout=settings.export_timeout_s,
        )

    exporter = GuardedSpanExporter(otlp_exporter)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.service_name}))
    _add_own_processors(provider, settings)
    provider.add_span_processor(
        BoundedSpanProcessor(exporter, settings.endpoint, settings.shutdown_timeout_s)
    )
    return provider


def _add_own_processors(provider: TracerProvider, settings: InstrumentationSettings) -> None:
    """Add the processors that complete spans as they start: baggage, then start markers.

    The marker processor comes after the baggage processor, so a step's run id and task
    class are on the step span when its marker is built.
    """
    provider.add_span_processor(BaggageSpanProcessor())
    if settings.step_markers:
        provider.add_span_processor(StepMarkerProcessor())


def configure_tracing(settings: InstrumentationSettings) -> TracerProvider | None:
    """Build the provider and make it global, once per process.

    When the application already set an SDK provider of its own, that one is kept (and gets
    the baggage span processor and, with ``step_markers`` on, the start-marker processor: its
    markers go to the application's own processors and exporters).

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
            _add_own_processors(provider, settings)
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
    _check_at_start(settings, own_exporter=provider is not current)
    _start_followers()
    return provider


def _check_at_start(settings: InstrumentationSettings, *, own_exporter: bool) -> None:
    """Say now what would otherwise show only later (never raises).

    An endpoint on the OTLP/HTTP port (4318), when spans go through our OTLP/gRPC exporter;
    a handoff checkpoint store URL no store can use (handoff checkpoints are then off: the app
    stays instrumented).
    """
    from agentmesh.instrumentation._failopen import safe_call
    from agentmesh.instrumentation.checkpoints import check_checkpoint_url

    hint = endpoint_port_hint(settings.endpoint) if own_exporter else None
    if hint is not None:
        _log.warning("agentmesh.exporter.wrong_port", endpoint=settings.endpoint, detail=hint)
    safe_call("checkpoints.check", check_checkpoint_url, settings.checkpoint_url)


def _start_followers() -> None:
    """Start following the collector's route table and control document (never raises).

    Now, not at the first provider call: the first calls of a process are then routed (and
    stopped) like the rest.
    """
    from agentmesh.instrumentation._failopen import safe_call
    from agentmesh.instrumentation.control import control_client
    from agentmesh.instrumentation.route_table import route_table_client

    safe_call("route_table.start", route_table_client)
    safe_call("control.start", control_client)


def disabled_instrumentations() -> frozenset[str]:
    """Read ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (comma-separated names, ``*`` for all).

    Returns:
        The names, stripped and lower-cased.
    """
    raw = os.environ.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "")
    return frozenset(name.strip().lower() for name in raw.split(",") if name.strip())


def instrumentation_disabled(entry_point_name: str, disabled: Iterable[str] | None = None) -> bool:
    """Tell whether an AgentMesh instrumentor is disabled by name.

    Both the entry point name (``agentmesh_openai``) and the library's short name
    (``openai``) disable it; ``*`` disables every instrumentor.

    Args:
        entry_point_name: The instrumentor's entry point name.
        disabled: The disabled names; read from the environment by default.

    Returns:
        Whether to skip it.

    Example:
        >>> instrumentation_disabled("agentmesh_langgraph", ["openai", "langgraph"])
        True
        >>> instrumentation_disabled("agentmesh_openai", ["agentmesh_langgraph"])
        False
    """
    names = frozenset(disabled) if disabled is not None else disabled_instrumentations()
    if not names:
        return False
    name = entry_point_name.lower()
    short = name.removeprefix(_ENTRY_POINT_PREFIX)
    return _ALL in names or name in names or short in names


def _own_instrumentors() -> list[tuple[str, type[BaseInstrumentor]]]:  # pyright: ignore[reportUnknownParameterType]
    found: list[tuple[str, type[BaseInstrumentor]]] = []  # pyright: ignore[reportUnknownVariableType]
    for entry_point in entry_points(group=_ENTRY_POINT_GROUP):
        if not entry_point.value.startswith(_OWN_PACKAGE):
            continue
        try:
            loaded: object = entry_point.load()
        except Exception as exc:  # noqa: BLE001 - a broken instrumentor must not stop the others
            _log.warning(
                "agentmesh.instrument_failed", instrumentor=entry_point.name, error=str(exc)
            )
            continue
        if isinstance(loaded, type) and issubclass(loaded, BaseInstrumentor):
            found.append((entry_point.name, loaded))
    if found:
        return found
    return [(_FALLBACK_NAMES.get(cls.__name__, cls.__name__), cls) for cls in INSTRUMENTORS]  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType, reportUnknownArgumentType]


def instrumentor_supported(instrumentor: BaseInstrumentor) -> bool:
    """Tell whether the library an instrumentor targets is installed in a supported version.

    Args:
        instrumentor: The instrumentor.

    Returns:
        Whether it can be applied.
    """
    dependencies: list[str] = list(instrumentor.instrumentation_dependencies())
    return get_dependency_conflicts(dependencies) is None


def instrument_installed(
    tracer_provider: TracerProvider | None = None, *, capture_content: bool | None = None
) -> list[str]:
    """Apply every AgentMesh instrumentor whose library is installed (skip applied ones).

    The instrumentors are the ``opentelemetry_instrumentor`` entry points of this package;
    those named in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (entry point or library name)
    are skipped.

    Args:
        tracer_provider: Provider for the spans; the global one by default.
        capture_content: Whether they record prompts and completions; ``None`` leaves it to
            the environment (``AGENTMESH_CAPTURE_CONTENT``, then the OpenTelemetry variable).

    Returns:
        Class names of the instrumentors now active.
    """
    active: list[str] = []
    disabled = disabled_instrumentations()
    for entry_name, cls in _own_instrumentors():  # pyright: ignore[reportUnknownVariableType]
        name: str = cls.__name__  # pyright: ignore[reportUnknownMemberType]
        if instrumentation_disabled(entry_name, disabled):
            _log.debug("agentmesh.instrumentor_disabled", instrumentor=entry_name)
            continue
        try:
            instrumentor = cls()
            if not instrumentor.is_instrumented_by_opentelemetry:
                if not instrumentor_supported(instrumentor):
                    continue
                options: dict[str, object] = {}
                if capture_content is not None:
                    options["capture_content"] = capture_content
                instrumentor.instrument(
                    tracer_provider=tracer_provider, skip_dep_check=True, **options
                )
            active.append(name)
        except Exception as exc:  # noqa: BLE001 - one failing instrumentor must not stop others
            _log.warning("agentmesh.instrument_failed", instrumentor=name, error=str(exc))
    return active


def init(**overrides: object) -> TracerProvider | None:
    """:func:`agentmesh.instrumentation.init` once this module (and OpenTelemetry) imported.

    Args:
        **overrides: Settings that take precedence over ``AGENTMESH_*`` variables.

    Returns:
        The global SDK tracer provider, or ``None`` when disabled or misconfigured.
    """
    try:
        settings = load_settings(**overrides)
        if settings is None or settings.disabled:
            return None
        with _lock:
            provider = configure_tracing(settings)
            capture = settings.capture_content if "capture_content" in overrides else None
            instrument_installed(provider, capture_content=capture)
            return provider
    except Exception as exc:  # noqa: BLE001 - init() never raises into the application
        _log.error("agentmesh.init_failed", error_type=type(exc).__name__, error=str(exc))
        return None
