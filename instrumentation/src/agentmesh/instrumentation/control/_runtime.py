"""The process-wide control client: configured from the settings on first use, stopped at exit.

The first reader (a provider call's hook, an agent step's check) reads the settings once; when
control is enabled it starts one :class:`~._client.ControlClient`. Later reads cost one global
read. The client is stopped at interpreter exit and by :func:`shutdown_control` (the provider
hooks' uninstall calls it); a forked child starts its own on first use (the slot holding it,
:class:`~._slot.ClientSlot`, is shared with the route table's runtime).

Enabled when ``AGENTMESH_CONTROL_ENABLED`` says so; by default when a collector is named:
``AGENTMESH_CONTROL_URL``, ``AGENTMESH_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``. Never raises: invalid settings are logged (once per process,
with whatever else read them first) and control is off.
"""

from __future__ import annotations

import os
from typing import Final

from opentelemetry.util.re import parse_env_headers

from agentmesh.core.log import get_logger
from agentmesh.instrumentation.control._client import ControlClient
from agentmesh.instrumentation.control._slot import ClientSlot
from agentmesh.instrumentation.control._url import control_base_url
from agentmesh.instrumentation.settings import InstrumentationSettings, load_or_report

__all__ = [
    "configure_control",
    "control_client",
    "control_target",
    "otlp_headers",
    "shutdown_control",
]

_log = get_logger(__name__)

_OTEL_ENDPOINT_VARS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_OTEL_HEADER_VARS: Final = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")


def _configure_on_first_use() -> ControlClient | None:
    """Configure from the settings; wrong settings were said once already: control is off."""
    loaded = load_or_report()
    return configure_control(settings=loaded) if loaded is not None else None


_slot: ClientSlot[ControlClient] = ClientSlot("control", _configure_on_first_use)


def control_target(settings: InstrumentationSettings) -> str | None:
    """Return the base URL to follow, or ``None`` when control is off.

    Args:
        settings: The instrumentation settings.

    Returns:
        The collector's OTLP/HTTP base URL, or ``None``.

    Raises:
        ValueError: The URL cannot be derived from the endpoint.
    """
    if settings.disabled:
        return None
    enabled = settings.control_enabled
    if enabled is None:
        named = (
            settings.control_url is not None
            or "endpoint" in settings.model_fields_set
            or any(os.environ.get(name, "").strip() for name in _OTEL_ENDPOINT_VARS)
        )
        enabled = named
    if not enabled:
        return None
    if settings.control_url:
        return settings.control_url.rstrip("/")
    return control_base_url(settings.endpoint)


def otlp_headers() -> dict[str, str]:
    """Return the headers the span exporter sends (the collector's credentials, if any).

    Read from ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, else ``OTEL_EXPORTER_OTLP_HEADERS``
    (``key=value`` pairs, comma-separated, values URL-encoded), as the OTLP exporters do.

    Returns:
        The headers (empty when none are configured).
    """
    for name in _OTEL_HEADER_VARS:
        value = os.environ.get(name, "").strip()
        if value:
            return dict(parse_env_headers(value, liberal=True))
    return {}


def configure_control(
    *,
    url: str | None = None,
    client: ControlClient | None = None,
    settings: InstrumentationSettings | None = None,
    wait_s: float = 25.0,
) -> ControlClient | None:
    """Set the control client in force (the previous one is stopped) and start it.

    With ``client``, that client is used; with ``url``, a client of that collector; otherwise
    the settings decide (and may turn control off). A client built here sends the span
    exporter's headers (:func:`otlp_headers`): the collector's control endpoint asks for the
    same credentials as its OTLP endpoint.

    Args:
        url: The collector's OTLP/HTTP base URL.
        client: A client to install as is.
        settings: The settings to read; loaded from the environment by default.
        wait_s: Long-poll wait of a client built here.

    Returns:
        The running client, or ``None`` when control is off.

    Raises:
        ConfigError: The settings are invalid.
        ValueError: The URL is invalid.
    """
    if client is None:
        if url is None:
            loaded = settings if settings is not None else InstrumentationSettings.load()
            url = control_target(loaded)
        if url is not None:
            client = ControlClient(url, wait_s=wait_s, headers=otlp_headers())
    if client is not None:
        _log.debug("agentmesh.control.configured", url=client.base_url)
    return _slot.install(client)


def control_client() -> ControlClient | None:
    """Return the control client in force, configuring it on first use (never raises).

    Returns:
        The client, or ``None`` when control is off (or configuring it failed).
    """
    return _slot.client()


def shutdown_control(timeout_s: float = 1.0) -> None:
    """Stop the control client; the next use reads the settings again (never raises).

    Args:
        timeout_s: Longest time to wait for its thread.
    """
    _slot.shutdown(timeout_s)
