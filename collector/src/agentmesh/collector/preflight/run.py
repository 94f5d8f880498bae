"""Run every preflight check for a configuration: :func:`run_checks`."""

from __future__ import annotations

import asyncio

from agentmesh.collector.forward.targets import targets_from_settings
from agentmesh.collector.preflight.certificates import check_tls
from agentmesh.collector.preflight.finding import Finding
from agentmesh.collector.preflight.listen import check_port
from agentmesh.collector.preflight.remote import check_forward_target, check_redis
from agentmesh.collector.preflight.router import check_catalog, check_router
from agentmesh.collector.preflight.stores import check_store
from agentmesh.collector.settings import CollectorSettings

__all__ = ["run_checks"]


async def run_checks(settings: CollectorSettings) -> list[Finding]:
    """Check what a collector with these settings needs, without starting it.

    The addresses it listens on, its TLS files, its router trainer's predictor and
    trade-offs, its store, its Redis and its forwarding endpoints; the network checks run
    concurrently. Nothing is written anywhere.

    Args:
        settings: The collector's settings (already validated by loading them).

    Returns:
        One finding per check, in that order.
    """
    local = [check_port("grpc port", settings.grpc_host, settings.grpc_port)]
    if settings.http_enabled:
        local.append(check_port("http port", settings.http_host, settings.http_port))
    local.append(check_tls(settings))
    local.append(check_router(settings))
    local.append(check_catalog())
    remote = await asyncio.gather(
        check_store(settings),
        check_redis(settings),
        *(check_forward_target(t) for t in targets_from_settings(settings)),
    )
    return [*local, *remote]
