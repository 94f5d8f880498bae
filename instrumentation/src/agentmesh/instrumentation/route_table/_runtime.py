"""The process-wide route table client: configured on first use, stopped at exit.

The first reader (:func:`current_route_table`, called by the router before a provider call)
reads the settings once; when the route table is followed it starts one
:class:`~agentmesh.instrumentation.route_table._client.RouteTableClient`. Later reads cost one
global read. The client is stopped at interpreter exit and by :func:`shutdown_route_table`; a
forked child starts its own on first use (the slot holding it is the control client's kind:
:class:`~agentmesh.instrumentation.control._slot.ClientSlot`).

Followed when ``AGENTMESH_ROUTE_TABLE_SYNC`` says so; by default when a collector is named, as
for the control document (``AGENTMESH_CONTROL_URL``, ``AGENTMESH_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``), at the same base
URL. Never raises: invalid settings are logged (once per process, with whatever else read them
first) and the bundled table is used.
"""

from __future__ import annotations

from pathlib import Path

from agentmesh.core.log import get_logger
from agentmesh.instrumentation._failopen import report
from agentmesh.instrumentation.control import control_target
from agentmesh.instrumentation.control._runtime import otlp_headers
from agentmesh.instrumentation.control._slot import ClientSlot
from agentmesh.instrumentation.route_table._cache import default_cache_path
from agentmesh.instrumentation.route_table._client import RouteTableClient
from agentmesh.instrumentation.settings import InstrumentationSettings, load_or_report
from agentmesh.router.table import BUNDLED_TABLE, RouteTable

__all__ = [
    "cache_path",
    "configure_route_table",
    "current_route_table",
    "route_table_client",
    "route_table_target",
    "shutdown_route_table",
]

_log = get_logger(__name__)


def _configure_on_first_use() -> RouteTableClient | None:
    """Configure from the settings; wrong settings were said once already: the bundled table."""
    loaded = load_or_report()
    return configure_route_table(settings=loaded) if loaded is not None else None


_slot: ClientSlot[RouteTableClient] = ClientSlot("route_table", _configure_on_first_use)


def route_table_target(settings: InstrumentationSettings) -> str | None:
    """Return the collector base URL to follow the route table at, or ``None`` when off.

    Args:
        settings: The instrumentation settings (``route_table_sync``, the control URL, the
            endpoint).

    Returns:
        The collector's OTLP/HTTP base URL, or ``None``.

    Raises:
        ValueError: The URL cannot be derived from the endpoint.
    """
    switch = {"control_enabled": settings.route_table_sync}
    return control_target(settings.model_copy(update=switch))


def cache_path(settings: InstrumentationSettings, url: str | None = None) -> Path:
    """Return the route table cache file the settings name (or the default one for ``url``).

    Args:
        settings: The instrumentation settings.
        url: The collector followed (keys the default file).

    Returns:
        The path.
    """
    configured = settings.route_table_cache
    return configured if configured is not None else default_cache_path(url)


def configure_route_table(
    *,
    url: str | None = None,
    client: RouteTableClient | None = None,
    settings: InstrumentationSettings | None = None,
    wait_s: float = 25.0,
) -> RouteTableClient | None:
    """Set the route table client in force (the previous one is stopped) and start it.

    With ``client``, that client is used; with ``url``, a client of that collector; otherwise
    the settings decide (and may turn following off). A client built here sends the span
    exporter's headers (the collector's credentials) and caches at the settings' path.

    Args:
        url: The collector's OTLP/HTTP base URL.
        client: A client to install as is.
        settings: The settings to read; loaded from the environment by default.
        wait_s: Long-poll wait of a client built here.

    Returns:
        The running client, or ``None`` when the route table is not followed.

    Raises:
        ConfigError: The settings are invalid.
        ValueError: The URL is invalid.
    """
    if client is None:
        loaded = settings if settings is not None else InstrumentationSettings.load()
        if url is None:
            url = route_table_target(loaded)
        if url is not None:
            client = RouteTableClient(
                url, cache_path=cache_path(loaded, url), wait_s=wait_s, headers=otlp_headers()
            )
            # now, not in its thread: the calls made before its first answer follow the cache
            client.load_cache()
    if client is not None:
        _log.debug("agentmesh.route_table.configured", url=client.base_url)
    return _slot.install(client)


def route_table_client() -> RouteTableClient | None:
    """Return the route table client in force, configuring it on first use (never raises).

    Returns:
        The client, or ``None`` when the route table is not followed (or configuring failed).
    """
    return _slot.client()


def current_route_table() -> RouteTable:
    """Return the latest route table (never raises, never blocks).

    Returns:
        The collector's latest table; the cached one while none arrived; the bundled defaults
        (version 0) when the route table is not followed.
    """
    try:
        client = route_table_client()
        return client.table if client is not None else BUNDLED_TABLE
    except Exception as exc:  # noqa: BLE001 - fail-open
        report("route_table.current", exc)
        return BUNDLED_TABLE


def shutdown_route_table(timeout_s: float = 1.0) -> None:
    """Stop the route table client; the next use reads the settings again (never raises).

    Args:
        timeout_s: Longest time to wait for its thread.
    """
    _slot.shutdown(timeout_s)
