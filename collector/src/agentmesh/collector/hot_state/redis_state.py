"""The hot state in Redis, shared by every collector: plain commands only, no modules.

Keys, all under a configurable prefix (``agentmesh:`` by default):

- ``{prefix}run:{trace_id}``: a hash with the run's latest state (``run_id``, ``status``,
  ``agents`` as a JSON array, ``handoffs``, ``cost_usd``, ``last_span_ns``…). It expires
  ``finished_ttl_seconds`` after the run completes, or ``idle_ttl_seconds`` after its last
  update while it runs.
- ``{prefix}runs:live``: a sorted set of trace ids scored by when a collector last updated the
  run (wall clock, milliseconds). Members idle longer than ``idle_ttl_seconds`` are removed on
  each update; members whose hash has expired are removed when :meth:`RedisHotState.live_runs`
  meets them.
- ``{prefix}detections``: the pub/sub channel detections are published on, as JSON.

Each update is one ``MULTI``/``EXEC`` transaction, so a reader never sees half a state.
:meth:`RedisHotState.republish_run` writes a state whose update could not be made when it was
given (Redis was away): with what is left of its time to live, or, when none is left, by
removing the run, as the time to live would have.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Final, Self, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.typing import EncodableT, FieldT

from agentmesh.collector.detection import Detection
from agentmesh.collector.hot_state.base import RunState
from agentmesh.collector.hot_state.events import detection_from_json, detection_to_json
from agentmesh.collector.hot_state.redis_errors import redis_address, redis_error
from agentmesh.core.errors import StoreError
from agentmesh.core.log import get_logger

__all__ = ["RedisDetectionSubscription", "RedisHotState"]

_log = get_logger(__name__)

_Redis = aioredis.Redis
_NS_PER_MS: Final = 1_000_000
_FAILURES: Final = (redis.exceptions.RedisError, OSError)


class RedisHotState:
    """A :class:`~agentmesh.collector.hot_state.base.HotState` in Redis.

    Args:
        url: ``redis://host:6379/0`` (a password may be given as ``redis://:pw@host…``).
        prefix: Start of every key and channel name.
        finished_ttl_seconds: How long a complete (or paused) run stays.
        idle_ttl_seconds: How long a running run stays after its last update.
        timeout_seconds: Connect and command timeout; a dead Redis fails within it.
        clock_ns: Wall clock in nanoseconds (the live index's scores and idle cut-off).

    Raises:
        StoreError: A time to live or the timeout is not positive, or the prefix is empty.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "agentmesh:",
        finished_ttl_seconds: int = 600,
        idle_ttl_seconds: int = 3600,
        timeout_seconds: float = 1.0,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if not prefix:
            raise StoreError("the Redis key prefix must not be empty")
        if finished_ttl_seconds < 1 or idle_ttl_seconds < 1 or timeout_seconds <= 0:
            raise StoreError("Redis times to live and timeout must be positive")
        self._url = url
        self._prefix = prefix
        self._finished_ttl = finished_ttl_seconds
        self._idle_ttl = idle_ttl_seconds
        self._timeout = timeout_seconds
        self._clock = clock_ns
        self._address = redis_address(url)
        self._client: _Redis | None = None
        self._closed = False

    @property
    def address(self) -> str:
        """``host:port`` of the server (no credentials)."""
        return self._address

    @property
    def live_key(self) -> str:
        """The sorted set of live runs."""
        return f"{self._prefix}runs:live"

    @property
    def channel(self) -> str:
        """The pub/sub channel of detections."""
        return f"{self._prefix}detections"

    def run_key(self, trace_id: str) -> str:
        """Return the hash holding a run's state.

        Args:
            trace_id: The trace.

        Returns:
            The key.
        """
        return f"{self._prefix}run:{trace_id}"

    async def open(self) -> Self:
        """Connect and check Redis answers (``PING``).

        Returns:
            The hot state.

        Raises:
            StoreError: Redis cannot be reached or refuses.
        """
        client = self._connection()
        try:
            await client.ping()  # pyright: ignore[reportUnknownMemberType]
        except _FAILURES as exc:
            raise redis_error(exc, self._address, self._timeout) from exc
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections; later calls raise ``StoreError``. Closing twice is harmless."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except _FAILURES as exc:
                _log.warning("Redis connection did not close cleanly", reason=str(exc))

    async def update_run(self, state: RunState) -> None:
        """Record a run's latest state and move it to the top of the live index.

        Args:
            state: The state.

        Raises:
            StoreError: Redis failed.
        """
        await self._write(state, self._ttl_seconds(state) * 1000)

    async def republish_run(self, state: RunState, *, age_seconds: float) -> None:
        """Record a run state given ``age_seconds`` ago, whose update could not be made then.

        The run's hash is kept for what is left of its time to live (at least a millisecond);
        when nothing is left, the run is removed (hash and live-index entry), as its time to
        live would have done.

        Args:
            state: The state.
            age_seconds: How long ago the state was given.

        Raises:
            StoreError: Redis failed.
        """
        left_ms = self._ttl_seconds(state) * 1000 - int(max(0.0, age_seconds) * 1000)
        if left_ms > 0:
            await self._write(state, left_ms)
            return
        client = self._connection()
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(self.run_key(state.trace_id))  # pyright: ignore[reportUnusedCallResult]
                pipe.zrem(self.live_key, state.trace_id)  # pyright: ignore[reportUnusedCallResult, reportUnknownMemberType]
                await pipe.execute()
        except _FAILURES as exc:
            raise redis_error(exc, self._address, self._timeout) from exc

    def _ttl_seconds(self, state: RunState) -> int:
        return self._idle_ttl if state.status == "running" else self._finished_ttl

    async def _write(self, state: RunState, ttl_ms: int) -> None:
        client = self._connection()
        key = self.run_key(state.trace_id)
        now_ms = self._clock() // _NS_PER_MS
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.delete(key)  # pyright: ignore[reportUnusedCallResult]
                pipe.hset(key, mapping=_encode(state))  # pyright: ignore[reportUnusedCallResult]
                pipe.pexpire(key, ttl_ms)  # pyright: ignore[reportUnusedCallResult]
                pipe.zadd(  # pyright: ignore[reportUnusedCallResult]
                    self.live_key, {state.trace_id: state.seen_ns // _NS_PER_MS}
                )
                pipe.zremrangebyscore(  # pyright: ignore[reportUnusedCallResult]
                    self.live_key, "-inf", f"({now_ms - self._idle_ttl * 1000}"
                )
                await pipe.execute()
        except _FAILURES as exc:
            raise redis_error(exc, self._address, self._timeout) from exc

    async def run(self, trace_id: str) -> RunState | None:
        """Read a run's latest state.

        Args:
            trace_id: The trace.

        Returns:
            The state, or ``None`` when unknown or expired.

        Raises:
            StoreError: Redis failed, or the hash is not a run state.
        """
        client = self._connection()
        try:
            fields = await client.hgetall(self.run_key(trace_id))  # pyright: ignore[reportUnknownMemberType, reportGeneralTypeIssues]
        except _FAILURES as exc:
            raise redis_error(exc, self._address, self._timeout) from exc
        return _decode(trace_id, cast(dict[str, str], fields)) if fields else None

    async def live_runs(self, limit: int | None = None) -> list[RunState]:
        """List the runs in the live index, most recently updated first.

        Args:
            limit: Most runs returned; all when ``None``.

        Returns:
            Their states (runs whose state expired are dropped from the index on the way).

        Raises:
            StoreError: Redis failed, or ``limit`` is below 1.
        """
        if limit is not None and limit < 1:
            raise StoreError(f"limit must be at least 1, got {limit}")
        client = self._connection()
        found: list[RunState] = []
        start = 0
        try:
            while limit is None or len(found) < limit:
                want = -1 if limit is None else start + (limit - len(found)) - 1
                ids = cast(list[str], await client.zrevrange(self.live_key, start, want))  # pyright: ignore[reportUnknownMemberType]
                if not ids:
                    break
                async with client.pipeline(transaction=False) as pipe:
                    for trace_id in ids:
                        pipe.hgetall(self.run_key(trace_id))  # pyright: ignore[reportUnusedCallResult, reportUnknownMemberType]
                    hashes = cast(list[dict[str, str]], await pipe.execute())
                gone = [t for t, fields in zip(ids, hashes, strict=True) if not fields]
                found += [_decode(t, f) for t, f in zip(ids, hashes, strict=True) if f]
                if gone:
                    await client.zrem(self.live_key, *gone)  # pyright: ignore[reportUnknownMemberType]
                start += len(ids) - len(gone)
                if limit is None:
                    break
        except _FAILURES as exc:
            raise redis_error(exc, self._address, self._timeout) from exc
        return found

    async def publish_detection(self, detection: Detection) -> int:
        """Publish a detection on :attr:`channel` as JSON.

        Args:
            detection: The detection.

        Returns:
            How many subscribers received it.

        Raises:
            StoreError: Redis failed.
        """
        client = self._connection()
        try:
            return int(await client.publish(self.channel, detection_to_json(detection)))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        except _FAILURES as exc:
            raise redis_error(exc, self._address, self._timeout) from exc

    def subscribe_detections(self) -> RedisDetectionSubscription:
        """Subscribe to detections published from now on (on a connection of its own).

        Returns:
            The subscription; entering it waits until Redis confirms it.
        """
        self._check()
        return RedisDetectionSubscription(self._url, self.channel, self._address, self._timeout)

    def _check(self) -> None:
        if self._closed:
            raise StoreError(f"the Redis hot state at {self._address} is closed")

    def _connection(self) -> _Redis:
        self._check()
        if self._client is None:
            self._client = _client(self._url, self._timeout, self._timeout)
        return self._client


class RedisDetectionSubscription:
    """Detections from the Redis channel, as an async iterator; see ``subscribe_detections``.

    Messages that are not detections are logged and skipped.

    Args:
        url: The Redis URL.
        channel: The channel.
        address: ``host:port``, for messages.
        timeout_seconds: Connect timeout (reads wait as long as it takes).
    """

    def __init__(self, url: str, channel: str, address: str, timeout_seconds: float) -> None:
        self._url = url
        self._channel = channel
        self._address = address
        self._timeout = timeout_seconds
        self._client: _Redis | None = None
        self._pubsub: PubSub | None = None

    async def __aenter__(self) -> Self:
        self._client = _client(self._url, self._timeout, None)
        self._pubsub = self._client.pubsub()  # pyright: ignore[reportUnknownMemberType]
        try:
            await self._pubsub.subscribe(self._channel)  # pyright: ignore[reportUnknownMemberType]
            async with asyncio.timeout(self._timeout * 5):
                while True:  # wait for the confirmation: nothing published after is missed
                    message = cast(
                        "dict[str, object] | None",
                        await self._pubsub.get_message(timeout=self._timeout),  # pyright: ignore[reportUnknownMemberType]
                    )
                    if message is not None and message.get("type") == "subscribe":
                        break
        except (*_FAILURES, TimeoutError) as exc:
            await self._release()
            raise redis_error(exc, self._address, self._timeout) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._release()

    def __aiter__(self) -> AsyncIterator[Detection]:
        return self._detections()

    async def _detections(self) -> AsyncIterator[Detection]:
        pubsub = self._pubsub
        if pubsub is None:
            raise StoreError("enter the subscription (`async with`) before iterating it")
        while True:
            try:
                message = cast(
                    "dict[str, object] | None",
                    await pubsub.get_message(ignore_subscribe_messages=True, timeout=None),  # pyright: ignore[reportUnknownMemberType]
                )
            except _FAILURES as exc:
                raise redis_error(exc, self._address, self._timeout) from exc
            if message is None or message.get("type") != "message":
                continue
            try:
                yield detection_from_json(cast(str, message["data"]))
            except ValueError as exc:
                _log.warning("skipped a message that is not a detection", reason=str(exc))

    async def _release(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        client, self._client = self._client, None
        try:
            if pubsub is not None:
                await pubsub.aclose()
            if client is not None:
                await client.aclose()
        except _FAILURES as exc:
            _log.warning("Redis subscription did not close cleanly", reason=str(exc))


def _client(url: str, connect_timeout: float, read_timeout: float | None) -> _Redis:
    return aioredis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
        url,
        decode_responses=True,
        socket_connect_timeout=connect_timeout,
        socket_timeout=read_timeout,
        retry=Retry(NoBackoff(), 1),
    )


def _encode(state: RunState) -> dict[FieldT, EncodableT]:
    fields: dict[FieldT, EncodableT] = {
        "run_id": state.run_id,
        "status": state.status,
        "agents": json.dumps(list(state.agents), ensure_ascii=False),
        "handoffs": str(state.handoffs),
        "span_count": str(state.span_count),
        "llm_calls": str(state.llm_calls),
        "input_tokens": str(state.input_tokens),
        "output_tokens": str(state.output_tokens),
        "cost_usd": repr(state.cost_usd),
        "last_span_ns": str(state.last_span_ns),
        "seen_ns": str(state.seen_ns),
    }
    for name, value in (
        ("workflow_name", state.workflow_name),
        ("conversation_id", state.conversation_id),
        ("resumed_from", state.resumed_from),
    ):
        if value is not None:
            fields[name] = value
    return fields


def _decode(trace_id: str, fields: Mapping[str, str]) -> RunState:
    try:
        status = fields["status"]
        if status not in ("running", "complete", "paused", "failed", "interrupted"):
            raise ValueError(f"unknown status {status!r}")
        return RunState(
            trace_id=trace_id,
            run_id=fields["run_id"],
            workflow_name=fields.get("workflow_name"),
            status=status,
            agents=tuple(cast(list[str], json.loads(fields["agents"]))),
            handoffs=int(fields["handoffs"]),
            span_count=int(fields["span_count"]),
            llm_calls=int(fields["llm_calls"]),
            input_tokens=int(fields["input_tokens"]),
            output_tokens=int(fields["output_tokens"]),
            cost_usd=float(fields["cost_usd"]),
            last_span_ns=int(fields["last_span_ns"]),
            seen_ns=int(fields["seen_ns"]),
            conversation_id=fields.get("conversation_id"),
            resumed_from=fields.get("resumed_from"),
        )
    except (KeyError, ValueError) as exc:
        raise StoreError(f"Redis hash for run {trace_id} is not a run state: {exc}") from exc
