"""The route table in Redis, shared by every collector: :class:`RedisRouteTableState`.

- Key ``{prefix}route_table`` holds the published table as JSON (with its version), so it
  survives a collector restart: :meth:`~RedisRouteTableState.open` loads it.
- Each publication is a ``WATCH``/``GET``/``MULTI``/``SET``/``PUBLISH``/``EXEC`` transaction,
  retried when another collector published in between: no publication is lost.
- Channel ``{prefix}route_table:updates`` carries the new version after each publication; every
  collector subscribes, re-reads the key when a newer version is announced and wakes its long
  polls. The key is also re-read every ``refresh_seconds`` (a missed notice costs at most that).

Fail-open: when Redis cannot be reached the store keeps serving the last known table, logs
once, and applies publications locally; they are replayed on Redis, in order, when it answers
again. A key holding something that is not a route table is logged and left unused (the last
known table is served) until the next publication replaces it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Final, Self, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentmesh.collector.hot_state.redis_errors import redis_address, redis_error
from agentmesh.collector.recovery.control_state import ControlState
from agentmesh.collector.routing.table_state import Clock, RouteTableState, TableChange
from agentmesh.core.errors import ConfigError, RouteTableError
from agentmesh.core.log import get_logger
from agentmesh.router.table import RouteTable

__all__ = ["RedisRouteTableState"]

_log = get_logger(__name__)

_FAILURES: Final = (redis.exceptions.RedisError, OSError, TimeoutError)
_MAX_PENDING: Final = 100


class RedisRouteTableState(RouteTableState):
    """A :class:`~agentmesh.collector.routing.table_state.RouteTableState` in Redis.

    Args:
        url: ``redis://host:6379/0``.
        control: The control state whose open breakers the served table lists, if any.
        prefix: Start of the key and channel names.
        timeout_seconds: Connect and command timeout.
        retry_seconds: After a failure, how long publications stay local before Redis is tried
            again (the subscriber reconnects at this pace too).
        refresh_seconds: How often the key is re-read without a notice.
        clock: The time source of ``generated_at``.

    Raises:
        ConfigError: A duration is not positive or the prefix is empty.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        control: ControlState | None = None,
        prefix: str = "agentmesh:",
        timeout_seconds: float = 1.0,
        retry_seconds: float = 2.0,
        refresh_seconds: float = 5.0,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(control, clock=clock)
        if not prefix:
            raise ConfigError("the Redis key prefix of the route table must not be empty")
        if min(timeout_seconds, retry_seconds, refresh_seconds) <= 0:
            raise ConfigError("the route table's Redis timeout and delays must be positive")
        self._url = url
        self._prefix = prefix
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._refresh = refresh_seconds
        self._address = redis_address(url)
        self._client: aioredis.Redis | None = None
        self._lock = asyncio.Lock()
        self._pending: deque[TableChange] = deque()
        self._floor = 0  # highest version known: a new version is always above it
        self._sync_task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()  # the subscriber made its first attempt
        self._retry_at: float | None = None  # down: Redis is not tried before this time
        self._unreadable: str | None = None  # the stored text last refused, logged once
        self._closing = False

    @property
    def key(self) -> str:
        """The key holding the published table."""
        return f"{self._prefix}route_table"

    @property
    def channel(self) -> str:
        """The channel of publication notices (the new version, as text)."""
        return f"{self._prefix}route_table:updates"

    @property
    def available(self) -> bool:
        """Whether the last Redis call worked."""
        return self._retry_at is None

    @property
    def pending(self) -> int:
        """Publications applied locally, waiting to be replayed on Redis."""
        return len(self._pending)

    async def open(self) -> Self:
        """Load the stored table and subscribe to notices; a dead Redis is logged, not raised.

        Returns:
            The store.
        """
        if self._sync_task is not None:
            return self
        self._closing = False
        self._client = _client(self._url, self._timeout, self._timeout)
        self._sync_task = asyncio.create_task(self._sync(), name="agentmesh-route-table-sync")
        try:  # the first subscription and read, so no publication after open() is missed
            async with asyncio.timeout(self._timeout * 6):
                await self._synced.wait()
        except TimeoutError:
            _log.warning("route table subscription is slow; carrying on", at=self._address)
        return self

    async def close(self) -> None:
        """Stop the subscriber and close the connection."""
        self._closing = True
        task, self._sync_task = self._sync_task, None
        if task is not None:
            # redis-py's get_message can swallow a cancellation that races its own timeout:
            # cancel again until the task ends (``_closing`` also ends its loops).
            while not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.1)
            if not task.cancelled() and task.exception() is not None:
                _log.warning("route table subscriber failed", reason=str(task.exception()))
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except _FAILURES as exc:
                _log.warning("Redis connection did not close cleanly", reason=str(exc))
        if self._pending:
            _log.warning("route table publications never reached Redis", count=len(self._pending))

    async def refresh(self) -> RouteTable:
        """Re-read the published table from Redis (the last known one when Redis fails).

        Returns:
            The published table.
        """
        async with self._lock:
            if self._due():
                try:
                    await self._flush()
                    await self._read()
                except _FAILURES as exc:
                    self._down(exc)
        return self._published

    async def publish(self, change: TableChange) -> RouteTable:
        """Publish in a Redis transaction (locally when Redis is down, replayed later).

        Args:
            change: Makes the next table from the published one.

        Returns:
            The table published.

        Raises:
            RouteTableError: Applications would refuse the new table; nothing was published.
        """
        async with self._lock:
            if self._due():
                try:
                    await self._flush()
                    return await self._transact(change)
                except _FAILURES as exc:
                    self._down(exc)
            return self._apply_locally(change)

    # --- internals (called with the lock held) ----------------------------------------------

    def _due(self) -> bool:
        loop = asyncio.get_running_loop()
        return self._client is not None and (
            self._retry_at is None or loop.time() >= self._retry_at
        )

    def _apply_locally(self, change: TableChange) -> RouteTable:
        table = self._next(self._published, change, max(self._published.version, self._floor) + 1)
        if len(self._pending) >= _MAX_PENDING:
            self._pending.popleft()
            _log.warning("oldest local route table publication dropped", kept=_MAX_PENDING)
        self._pending.append(change)
        self._accept(table)
        _log.info("route table published locally (Redis down)", version=table.version)
        return table

    async def _flush(self) -> None:
        while self._pending:
            try:
                await self._transact(self._pending[0])
            except _FAILURES:
                raise
            except Exception as exc:  # noqa: BLE001 - refused on the table Redis holds: drop it
                _log.error("local route table publication dropped", reason=str(exc))
            self._pending.popleft()

    async def _transact(self, change: TableChange) -> RouteTable:
        client = self._connection()
        async with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self.key)
                    raw = cast("str | None", await pipe.get(self.key))  # pyright: ignore[reportUnknownMemberType]
                    stored = self._decode(raw)
                    base = stored if stored is not None else self._published
                    version = max(base.version, self._floor) + 1
                    try:
                        table = self._next(base, change, version)
                    except BaseException:
                        await pipe.reset()
                        raise
                    pipe.multi()
                    pipe.set(self.key, table.to_json())  # pyright: ignore[reportUnusedCallResult]
                    pipe.publish(self.channel, str(version))  # pyright: ignore[reportUnusedCallResult, reportUnknownMemberType]
                    await pipe.execute()
                except redis.exceptions.WatchError:
                    continue  # another collector published: apply the change to theirs
                break
        self._accept(table)
        self._up()
        _log.info("route table published", version=table.version)
        return table

    async def _read(self) -> None:
        if self._pending:
            return  # the local table is ahead until the publications are replayed
        client = self._connection()
        raw = cast("str | None", await client.get(self.key))  # pyright: ignore[reportUnknownMemberType]
        table = self._decode(raw)
        if table is not None:
            self._accept(table)
        self._up()

    def _decode(self, raw: str | None) -> RouteTable | None:
        if raw is None:
            return None
        try:
            table = RouteTable.from_json(raw)
        except RouteTableError as exc:
            if raw != self._unreadable:
                self._unreadable = raw
                _log.error(
                    "Redis route table unreadable; serving the last known one",
                    key=self.key,
                    reason=str(exc),
                )
            return None
        self._unreadable = None
        return table

    def _accept(self, table: RouteTable) -> None:
        self._floor = max(self._floor, table.version)
        self._set_published(table)

    def _connection(self) -> aioredis.Redis:
        if self._client is None:
            raise redis.exceptions.ConnectionError("the route table state is closed")
        return self._client

    def _up(self) -> None:
        if self._retry_at is not None:
            self._retry_at = None
            _log.info("Redis route table available again", at=self._address)

    def _down(self, exc: BaseException) -> None:
        reason = str(redis_error(exc, self._address, self._timeout))
        first = self._retry_at is None
        self._retry_at = asyncio.get_running_loop().time() + self._retry
        if first:
            _log.warning(
                "Redis route table unavailable; serving the last known one",
                reason=reason,
                pending=len(self._pending),
                retry_seconds=self._retry,
            )

    # --- the subscriber ---------------------------------------------------------------------

    async def _sync(self) -> None:
        while not self._closing:
            subscriber = _client(self._url, self._timeout, None)
            pubsub = subscriber.pubsub()  # pyright: ignore[reportUnknownMemberType]
            try:
                await pubsub.subscribe(self.channel)  # pyright: ignore[reportUnknownMemberType]
                async with asyncio.timeout(self._timeout * 5):
                    while True:  # confirmed: no notice published after this is missed
                        message = cast(
                            "dict[str, object] | None",
                            await pubsub.get_message(timeout=self._timeout),  # pyright: ignore[reportUnknownMemberType]
                        )
                        if message is not None and message.get("type") == "subscribe":
                            break
                await self._catch_up()
                self._synced.set()
                while not self._closing:
                    message = cast(
                        "dict[str, object] | None",
                        await pubsub.get_message(  # pyright: ignore[reportUnknownMemberType]
                            ignore_subscribe_messages=True, timeout=self._refresh
                        ),
                    )
                    if message is None or _announced(message) > self._published.version:
                        await self._catch_up()
            except _FAILURES as exc:
                async with self._lock:
                    self._down(exc)
            finally:
                try:
                    await pubsub.aclose()
                    await subscriber.aclose()
                except _FAILURES:
                    pass
            self._synced.set()
            await asyncio.sleep(self._retry)

    async def _catch_up(self) -> None:
        async with self._lock:
            await self._flush()
            await self._read()


def _announced(message: dict[str, object]) -> int:
    if message.get("type") != "message":
        return -1
    try:
        return int(str(message.get("data")))
    except ValueError:
        return 1 << 62  # not a version: re-read to be safe


def _client(url: str, connect_timeout: float, read_timeout: float | None) -> aioredis.Redis:
    return aioredis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
        url,
        decode_responses=True,
        socket_connect_timeout=connect_timeout,
        socket_timeout=read_timeout,
        retry=Retry(NoBackoff(), 1),
    )
