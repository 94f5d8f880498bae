"""Liveness and readiness probes on the HTTP port: ``GET /healthz`` and ``GET /readyz``.

``/healthz`` answers ``200`` while the process serves HTTP (a liveness probe: restart the
collector when it stops answering). ``/readyz`` answers ``200`` when the collector takes spans
and can store them, else ``503``, with each check in the body::

    {"status": "not ready",
     "checks": {"pipeline": "ok", "store": "unavailable: writes are held and retried",
                "queue": "ok"}}

The checks: ``pipeline`` (running and accepting; not before start nor while draining at
shutdown), ``store`` (it answered the last write and, for a store kept elsewhere, the last
check made while no write went through; while it does not, the pipeline holds the data and
retries), and ``queue``, reported but not failing readiness: a full queue is
momentary backpressure the receivers already answer with ``UNAVAILABLE`` / ``503`` and
``Retry-After``. Both probes are public (no token: probes carry none) and say nothing about
the data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aiohttp import web

__all__ = ["HEALTH_PATH", "READY_PATH", "Readiness", "health_routes"]

HEALTH_PATH: Final = "/healthz"
"""The liveness probe."""
READY_PATH: Final = "/readyz"
"""The readiness probe."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the collector is ready, and why not.

    Attributes:
        ready: Whether it takes spans and can store them.
        checks: Each check's outcome: ``"ok"`` or what is wrong, in words.
    """

    ready: bool
    checks: Mapping[str, str]


def health_routes(readiness: Callable[[], Readiness]) -> list[web.RouteDef]:
    """Return the probe routes.

    Args:
        readiness: Reports the collector's readiness (``Collector.readiness``).

    Returns:
        The routes, to mount without authentication.
    """

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        state = readiness()
        return web.json_response(
            {"status": "ready" if state.ready else "not ready", "checks": dict(state.checks)},
            status=200 if state.ready else 503,
            headers={"Cache-Control": "no-store"},
        )

    return [web.route("GET", HEALTH_PATH, healthz), web.route("GET", READY_PATH, readyz)]
