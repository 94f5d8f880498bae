"""A versioned JSON document in one Redis key, shared by every collector: :class:`SharedDocument`.

The control document (stopped runs, open breakers) and the route table are both kept this way:

- One key holds the document as JSON, with its version, so it survives a collector restart.
- Each change is a ``WATCH``/``GET``/``MULTI``/``SET``/``PUBLISH``/``EXEC`` transaction, retried
  when another collector changed the key in between: no change is ever lost.
- A channel carries the new version after each change; every collector subscribes, re-reads the
  key when a newer version is announced and hands it to its owner (which wakes its long polls).
  The key is also re-read every ``refresh_seconds`` (a missed notice costs at most that).

Fail-open: when Redis cannot be reached the last known document is served, the failure is
logged once, and changes are applied locally; they are replayed on Redis, in order, when it
answers again. A key holding something that is not a document is logged (once per text) and
left unused, the last known document served, until the next change replaces it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeAlias, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from agentmesh.collector.hot_state.redis_errors import redis_address, redis_error
from agentmesh.core.connection_urls import redis_url_problem
from agentmesh.core.errors import ConfigError
from agentmesh.core.log import get_logger

__all__ = ["Document", "DocumentChange", "SharedDocument", "SharedDocumentHealth"]

_log = get_logger(__name__)

_FAILURES: Final = (redis.exceptions.RedisError, OSError, TimeoutError)


class Document(Protocol):
    """What a shared document is: numbered, and written as JSON."""

    @property
    def version(self) -> int:
        """Number of the change that made it (0: never changed)."""
        ...

    def to_json(self) -> str:
        """The document as JSON text (read back by the decoder given to the store)."""
        ...


D = TypeVar("D", bound=Document)

DocumentChange: TypeAlias = Callable[[D, int], "D | None"]
"""Makes the next document from the current one and the version it must carry; ``None`` when
nothing changes. It may raise to refuse the change (nothing is written)."""


@dataclass(frozen=True, slots=True)
class SharedDocumentHealth:
    """How the Redis behind a shared document is doing.

    Attributes:
        available: Whether the last Redis call worked.
        failures: Redis calls that failed.
        pending_changes: Changes applied locally, waiting to be replayed on Redis.
        last_error: The latest failure, in plain words, or ``None``.
    """

    available: bool
    failures: int
    pending_changes: int
    last_error: str | None


class SharedDocument(Generic[D]):
    """One document in one Redis key, changed atomically and followed by every collector.

    Args:
        url: ``redis://host:6379/0``.
        key: The key holding the document.
        channel: The channel of change notices (the new version, as text).
        what: What the document is, for messages ("route table").
        initial: The document served before any is read.
        decode: Reads a document from its JSON text; raises on text that is not one.
        accept: Told of each document read or written (the owner serves it and wakes waiters).
        missing: What a missing key stands for (a Redis reset); ``None``: the last known
            document, kept until the next change writes it back.
        timeout_seconds: Connect and command timeout.
        retry_seconds: After a failure, how long changes stay local before Redis is tried
            again (the subscriber reconnects at this pace too).
        refresh_seconds: How often the key is re-read without a change notice.
        max_pending: Most local changes kept for replay; the oldest is dropped beyond it.

    Raises:
        ConfigError: ``url`` is not a Redis URL redis-py can use, a duration or
            ``max_pending`` is not positive, or the key is empty.
    """

    def __init__(
        self,
        url: str,
        *,
        key: str,
        channel: str,
        what: str,
        initial: D,
        decode: Callable[[str], D],
        accept: Callable[[D], None],
        missing: D | None = None,
        timeout_seconds: float = 1.0,
        retry_seconds: float = 2.0,
        refresh_seconds: float = 5.0,
        max_pending: int = 100,
    ) -> None:
        problem = redis_url_problem(url)
        if problem is not None:
            raise ConfigError(f"invalid configuration: the Redis URL of the {what}: {problem}")
        if not key or not channel:
            raise ConfigError(f"the Redis key prefix of the {what} must not be empty")
        if min(timeout_seconds, retry_seconds, refresh_seconds) <= 0:
            raise ConfigError(f"the {what}'s Redis timeout and delays must be positive")
        if max_pending < 1:
            raise ConfigError(f"the {what}'s pending changes must be at least 1")
        self.key = key
        self.channel = channel
        self._what = what
        self._latest = initial
        self._decode_text = decode
        self._accept_document = accept
        self._missing = missing
        self._url = url
        self._timeout = timeout_seconds
        self._retry = retry_seconds
        self._refresh = refresh_seconds
        self._max_pending = max_pending
        self._address = redis_address(url)
        self._client: aioredis.Redis | None = None
        self._lock = asyncio.Lock()
        self._pending: deque[DocumentChange[D]] = deque()
        self._floor = 0  # highest version known: a new version is always above it
        self._sync_task: asyncio.Task[None] | None = None
        self._synced = asyncio.Event()  # the subscriber made its first attempt
        self._retry_at: float | None = None  # down: Redis is not tried before this time
        self._unreadable: str | None = None  # the stored text last refused, logged once
        self._closing = False
        self._failures = 0
        self._last_error: str | None = None

    @property
    def health(self) -> SharedDocumentHealth:
        """Whether Redis answers, failures, changes waiting to be replayed."""
        return SharedDocumentHealth(
            available=self._retry_at is None,
            failures=self._failures,
            pending_changes=len(self._pending),
            last_error=self._last_error,
        )

    async def open(self) -> None:
        """Read the document and subscribe to change notices; a dead Redis is logged, not raised."""
        if self._sync_task is not None:
            return
        self._closing = False
        self._client = _client(self._url, self._timeout, self._timeout)
        self._sync_task = asyncio.create_task(
            self._sync(), name=f"agentmesh-{self._what.replace(' ', '-')}-sync"
        )
        try:  # the first subscription and read, so no change made after open() is missed
            async with asyncio.timeout(self._timeout * 6):
                await self._synced.wait()
        except TimeoutError:
            _log.warning(f"{self._what} subscription is slow; carrying on", at=self._address)

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
                _log.warning(f"{self._what} subscriber failed", reason=str(task.exception()))
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except _FAILURES as exc:
                _log.warning("Redis connection did not close cleanly", reason=str(exc))
        if self._pending:
            _log.warning(f"{self._what} changes never reached Redis", changes=len(self._pending))

    async def refresh(self) -> D:
        """Re-read the document from Redis (the last known one when Redis fails).

        Returns:
            The document.
        """
        async with self._lock:
            if self._due():
                try:
                    await self._flush()
                    await self._read()
                except _FAILURES as exc:
                    self._down(exc)
        return self._latest

    async def update(self, change: DocumentChange[D]) -> D | None:
        """Apply a change in a Redis transaction (locally when Redis is down, replayed later).

        Args:
            change: Makes the next document from the current one.

        Returns:
            The new document, or ``None`` when the change changed nothing.

        Raises:
            Exception: Whatever ``change`` raised to refuse the change; nothing was written.
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

    def _next_version(self, base: D) -> int:
        return max(base.version, self._floor) + 1

    def _apply_locally(self, change: DocumentChange[D]) -> D | None:
        following = change(self._latest, self._next_version(self._latest))
        if following is None:
            return None
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            _log.warning(f"oldest local {self._what} change dropped", kept=self._max_pending)
        self._pending.append(change)
        self._accept(following)
        _log.info(f"{self._what} changed locally (Redis down)", version=following.version)
        return following

    async def _flush(self) -> None:
        while self._pending:
            try:
                await self._transact(self._pending[0])
            except _FAILURES:
                raise
            except Exception as exc:  # noqa: BLE001 - refused on the document Redis holds
                _log.error(f"local {self._what} change dropped", reason=str(exc))
            self._pending.popleft()

    async def _transact(self, change: DocumentChange[D]) -> D | None:
        client = self._connection()
        async with client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(self.key)
                    raw = cast("str | None", await pipe.get(self.key))  # pyright: ignore[reportUnknownMemberType]
                    stored = self._decode(raw)
                    base = stored if stored is not None else self._latest
                    try:
                        following = change(base, self._next_version(base))
                    except BaseException:
                        await pipe.reset()
                        raise
                    if following is None:
                        await pipe.reset()
                        if stored is not None and not self._pending:
                            self._accept(stored)
                        self._up()
                        return None
                    pipe.multi()
                    pipe.set(self.key, following.to_json())  # pyright: ignore[reportUnusedCallResult]
                    pipe.publish(self.channel, str(following.version))  # pyright: ignore[reportUnusedCallResult, reportUnknownMemberType]
                    await pipe.execute()
                except redis.exceptions.WatchError:
                    continue  # another collector changed it: apply the change to theirs
                break
        self._accept(following)
        self._up()
        _log.debug(f"{self._what} changed", version=following.version)
        return following

    async def _read(self) -> None:
        if self._pending:
            return  # the local document is ahead until the changes are replayed
        client = self._connection()
        raw = cast("str | None", await client.get(self.key))  # pyright: ignore[reportUnknownMemberType]
        document = self._decode(raw)
        if document is not None:
            self._accept(document)
        self._up()

    def _decode(self, raw: str | None) -> D | None:
        if raw is None:
            return self._missing
        try:
            document = self._decode_text(raw)
        except Exception as exc:  # noqa: BLE001 - anything may sit in the key
            if raw != self._unreadable:
                self._unreadable = raw
                _log.error(
                    f"Redis {self._what} unreadable; serving the last known one",
                    key=self.key,
                    reason=str(exc),
                )
            return None
        self._unreadable = None
        return document

    def _accept(self, document: D) -> None:
        self._floor = max(self._floor, document.version)
        self._latest = document
        self._accept_document(document)

    def _connection(self) -> aioredis.Redis:
        if self._client is None:
            raise redis.exceptions.ConnectionError(f"the {self._what} state is closed")
        return self._client

    def _up(self) -> None:
        if self._retry_at is not None:
            self._retry_at = None
            _log.info(f"Redis {self._what} available again", at=self._address)

    def _down(self, exc: BaseException) -> None:
        reason = str(redis_error(exc, self._address, self._timeout))
        self._failures += 1
        self._last_error = reason
        first = self._retry_at is None
        self._retry_at = asyncio.get_running_loop().time() + self._retry
        if first:
            _log.warning(
                f"Redis {self._what} unavailable; serving the last known one",
                reason=reason,
                pending_changes=len(self._pending),
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
                    if message is None or _announced(message) > self._latest.version:
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
    try:
        return aioredis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url,
            decode_responses=True,
            socket_connect_timeout=connect_timeout,
            socket_timeout=read_timeout,
            retry=Retry(NoBackoff(), 1),
        )
    except ValueError as exc:  # redis-py's words for a URL it cannot use (no password in them)
        raise ConfigError(f"invalid configuration: Redis URL: {exc}") from exc
