"""What the collector talks to besides its store: Redis (hot state) and forwarding endpoints.

Redis is pinged; a forwarding endpoint gets a TCP connection (and a TLS handshake for
``https``), no request: nothing is sent to LangSmith or Braintrust.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from urllib.parse import urlsplit

from agentmesh.collector.forward.targets import ForwardTarget
from agentmesh.collector.preflight.finding import Finding
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.socket_errors import socket_reason

__all__ = ["check_forward_target", "check_redis"]


async def check_redis(settings: CollectorSettings) -> Finding:
    """Ping the hot state's Redis, when one is configured.

    Args:
        settings: The collector's settings.

    Returns:
        The finding (``redis``): ``ok`` with the server's version, or ``fail`` with the reason.
    """
    if settings.redis_url is None:
        return Finding("redis", "ok", "off (no hot shared state)")
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from agentmesh.collector.hot_state.redis_errors import redis_address, redis_error

    url = settings.redis_url.get_secret_value()
    where = redis_address(url)
    try:
        client = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url,
            socket_timeout=settings.redis_timeout_seconds,
            socket_connect_timeout=settings.redis_timeout_seconds,
        )
    except ValueError as exc:  # settings loaded with load() refuse it first; redis-py's words
        variable = settings.env_var("redis_url")
        return Finding("redis", "fail", f"invalid configuration: {variable}: {exc}")
    try:
        await client.ping()  # pyright: ignore[reportUnknownMemberType]
        info = await client.info("server")  # pyright: ignore[reportUnknownMemberType]
    except (RedisError, OSError) as exc:
        return Finding(
            "redis", "fail", str(redis_error(exc, where, settings.redis_timeout_seconds))
        )
    finally:
        await client.aclose()
    return Finding("redis", "ok", f"Redis {info.get('redis_version', '?')} at {where}")


async def check_forward_target(target: ForwardTarget, within_seconds: float = 5.0) -> Finding:
    """Open a connection to a forwarding endpoint (TLS for ``https``), send nothing.

    Args:
        target: The endpoint.
        within_seconds: Seconds to wait for the connection.

    Returns:
        The finding (``forward <name>``).
    """
    check = f"forward {target.name}"
    parts = urlsplit(target.url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=ssl.create_default_context() if secure else None
            ),
            within_seconds,
        )
    except TimeoutError:
        return Finding(check, "fail", f"{target.url}: no answer within {within_seconds:g} s")
    except OSError as exc:  # refused, unknown host, TLS refused (ssl.SSLError is an OSError)
        return Finding(check, "fail", f"{target.url}: {socket_reason(exc)}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Finding(check, "ok", f"{target.url} is reachable")
