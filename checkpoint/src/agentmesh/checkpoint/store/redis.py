"""Checkpoints in plain Redis 7 (commands and Lua, no modules), asyncio and blocking.

:class:`RedisCheckpointStore` is the :class:`~agentmesh.checkpoint.store.base.CheckpointStore`
on ``redis.asyncio``; :class:`SyncRedisCheckpointStore` has the same methods, blocking, on the
sync client, for the LangGraph saver's sync methods (no event-loop hop). Both run the same
operations: each operation below is written once, without I/O, as a generator that yields the
batches of commands it needs and receives their replies; the two stores only differ in how they
send a batch. Key layout and Lua scripts: :mod:`agentmesh.checkpoint.store._redis_scripts`.

Round trips: ``put``, ``put_writes`` and ``get`` are one ``EVALSHA`` each (the compare-and-set
and every write of a put run atomically in one script); a script the server lost (``SCRIPT
FLUSH``, restart) is loaded again and the call repeated. ``list`` pages through the id indexes
and fetches checkpoints in pipelined batches, filtering metadata on the client.

Speed: one-command calls skip redis-py's client machinery (packed here, sent on the store's own
idle connections, see :class:`_AsyncLane`); a connection that breaks is dropped and the command
goes again through the redis-py client, which retries (3 times, jittered backoff). Every store
command can run twice safely: puts and writes are idempotent, deletes too.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import json
import math
import threading
from collections import deque
from collections.abc import AsyncIterator, Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, Self, TypeVar, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import Connection, parse_url
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.connection import Connection as SyncConnection
from redis.connection import (
    parse_url as sync_parse_url,  # pyright: ignore[reportUnknownVariableType]
)
from redis.retry import Retry

from agentmesh.checkpoint.store._metadata_filter import metadata_matches
from agentmesh.checkpoint.store._redis_scripts import (
    COPY_THREAD,
    DELETE_RUNS,
    DELETE_THREADS,
    GET,
    LIST,
    PRUNE,
    PUT,
    PUT_WRITES,
    SCRIPTS,
    Script,
    blob_args,
    blob_field,
    checkpoint_key,
    decode_blob,
    decode_metadata,
    decode_stored,
    encode_record,
    encode_write,
    ids_key,
    key_pattern,
    namespace_key,
    namespaces_key,
    thread_base,
    threads_key,
    touched_key,
    write_field,
)
from agentmesh.checkpoint.store._url_options import with_query_option
from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)
from agentmesh.core.connection_urls import redis_url_problem
from agentmesh.core.errors import CheckpointConflictError, CheckpointError, ConfigError
from agentmesh.core.log import get_logger
from agentmesh.core.urls import checkpoint_store_url

__all__ = ["DEFAULT_PREFIX", "RedisCheckpointStore", "SyncRedisCheckpointStore"]

DEFAULT_PREFIX: Final = "agentmesh:ckpt"
"""The prefix of a store's keys unless told otherwise (``?prefix=`` in its URL)."""

_log = get_logger(__name__)

_FAILURES: Final = (redis.exceptions.RedisError, OSError)
_PAGE: Final = 64
_STREAM_BUDGET: Final = 4096
_FETCH: Final = 32
_CHUNK: Final = 500

_R = TypeVar("_R")
_Arg = str | bytes | int | float


@dataclass(frozen=True, slots=True)
class _Eval:
    script: Script
    args: Sequence[_Arg]


_Request = _Eval | tuple[_Arg, ...]


@dataclass(frozen=True, slots=True)
class _Batch:
    """Commands sent together (one pipeline); more than one only when they are read-only."""

    requests: Sequence[_Request]


_Op = Generator[_Batch, list[Any], _R]
_ListOp = Generator[_Batch | StoredCheckpoint, list[Any], None]


def _wire(request: _Request) -> tuple[_Arg, ...]:
    if isinstance(request, _Eval):
        return ("EVALSHA", request.script.sha, 0, *request.args)
    return request


def _pack(args: Sequence[_Arg]) -> bytes:
    """Encode one command in RESP (what redis-py's ``pack_command`` does, a few times faster)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int):
            data = b"%d" % arg
        else:
            data = repr(arg).encode()
        parts += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(parts)


def _scripts_of(requests: Sequence[_Request]) -> list[Script]:
    seen = {r.script.sha: r.script for r in requests if isinstance(r, _Eval)}
    return list(seen.values())


# --- operations, without I/O ---------------------------------------------------------------------


def _put_op(
    prefix: str,
    record: CheckpointRecord,
    blobs: Mapping[tuple[str, str], Blob],
    extends: str | None,
    check_extends: bool,
) -> _Op[None]:
    fields = encode_record(record)
    mode = "0" if not check_extends else ("2" if extends is None else "1")
    args: list[_Arg] = [
        prefix,
        record.thread_id,
        record.namespace,
        record.checkpoint_id,
        mode,
        extends or "",
        record.run_id or "",
        "0" if record.run_id is None else "1",
        len(fields),
        *fields,
        *blob_args(blobs),
    ]
    (reply,) = yield _Batch((_Eval(PUT, args),))
    if isinstance(reply, list):
        actual = cast(list[bytes], reply)
        raise CheckpointConflictError(
            record.thread_id,
            record.namespace,
            extends,
            actual[1].decode() if len(actual) > 1 else None,
        )


def _put_writes_op(
    prefix: str, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
) -> _Op[None]:
    if not writes:
        return
    args: list[_Arg] = [prefix, thread_id, namespace, checkpoint_id]
    for w in writes:
        args += [write_field(w.task_id, w.idx), encode_write(w), "1" if w.idx < 0 else "0"]
    yield _Batch((_Eval(PUT_WRITES, args),))


def _get_request(
    prefix: str,
    thread_id: str,
    namespace: str,
    checkpoint_id: str | None,
    skip_channels: Collection[str] = (),
) -> _Eval:
    has_id = "1" if checkpoint_id is not None else "0"
    args = (prefix, thread_id, namespace, checkpoint_id or "", has_id, *skip_channels)
    return _Eval(GET, args)


def _list_request(prefix: str, checkpoints: Sequence[tuple[str, str, str]]) -> _Eval:
    return _Eval(LIST, (prefix, *(part for key in checkpoints for part in key)))


def _get_op(
    prefix: str,
    thread_id: str,
    namespace: str,
    checkpoint_id: str | None,
    skip_channels: Collection[str] = (),
) -> _Op[StoredCheckpoint | None]:
    request = _get_request(prefix, thread_id, namespace, checkpoint_id, skip_channels)
    (reply,) = yield _Batch((request,))
    if reply is None:
        return None
    stored, large = decode_stored(thread_id, namespace, cast(bytes, reply))
    if not large:
        return stored
    (raw,) = yield _Batch((_large_request(prefix, stored, large),))
    return _with_large(stored, large, [_blob_or_none(v) for v in cast(list[bytes | None], raw)])


def _large_request(prefix: str, stored: StoredCheckpoint, large: list[str]) -> tuple[str, ...]:
    """The ``HMGET`` of the values the GET script left out (see :func:`decode_stored`)."""
    record = stored.record
    versions = record.channel_versions
    fields = [blob_field(channel, versions[channel]) for channel in large]
    return (
        "HMGET",
        namespace_key(thread_base(prefix, record.thread_id), "b", record.namespace),
        *fields,
    )


def _blob_or_none(raw: bytes | None) -> Blob | None:
    return None if raw is None else decode_blob(raw)


def _with_large(
    stored: StoredCheckpoint, large: list[str], blobs: list[Blob | None]
) -> StoredCheckpoint:
    """The checkpoint with the values read apart added."""
    values = dict(stored.values)
    for channel, blob in zip(large, blobs, strict=True):
        if blob is not None:  # pruned in between: the channel has no value, as if never read
            values[channel] = blob
    return StoredCheckpoint(record=stored.record, values=values, writes=stored.writes)


def _delete_threads_op(prefix: str, thread_ids: Sequence[str]) -> _Op[int]:
    """Delete whole threads; returns how many checkpoints they held."""
    if not thread_ids:
        return 0
    (reply,) = yield _Batch((_Eval(DELETE_THREADS, (prefix, "", *thread_ids)),))
    return int(cast(list[int], reply)[1])


def _delete_runs_op(prefix: str, run_ids: Sequence[str]) -> _Op[None]:
    if run_ids:
        yield _Batch((_Eval(DELETE_RUNS, (prefix, *run_ids)),))


def _copy_op(prefix: str, source: str, target: str) -> _Op[None]:
    yield _Batch((_Eval(COPY_THREAD, (prefix, source, target)),))


def _prune_op(prefix: str, thread_ids: Sequence[str], keep_latest: bool) -> _Op[int]:
    """Prune threads; returns how many checkpoints were deleted."""
    if not thread_ids:
        return 0
    (reply,) = yield _Batch((_Eval(PRUNE, (prefix, "1" if keep_latest else "0", *thread_ids)),))
    return int(reply)


def _expire_op(prefix: str, older_than: float) -> _Op[int]:
    if math.isnan(older_than):
        raise CheckpointError("redis checkpoint store: expire needs a time, got NaN")
    cutoff = "+inf" if math.isinf(older_than) and older_than > 0 else repr(float(older_than))
    deleted = 0
    while True:
        (due,) = yield _Batch(
            (("ZRANGEBYSCORE", touched_key(prefix), "-inf", f"({cutoff}", "LIMIT", 0, 200),)
        )
        if not due:
            return deleted
        (counts,) = yield _Batch(
            (_Eval(DELETE_THREADS, (prefix, cutoff, *cast(list[bytes], due))),)
        )
        deleted += int(cast(list[int], counts)[0])


def _size_op(prefix: str) -> _Op[int]:
    pattern = key_pattern(prefix)
    cursor: int = 0
    total = 0
    while True:
        (reply,) = yield _Batch((("SCAN", cursor, "MATCH", pattern, "COUNT", 1000),))
        cursor, keys = cast(tuple[int, list[bytes]], reply)
        if keys:
            sizes = yield _Batch(tuple(("MEMORY", "USAGE", k, "SAMPLES", 0) for k in keys))
            total += sum(int(s or 0) for s in sizes)
        if int(cursor) == 0:
            return total


class _Newest:
    """Heap key: greatest checkpoint id first, ties by thread then namespace, also descending."""

    __slots__ = ("key",)

    def __init__(self, checkpoint_id: str, thread_id: str, namespace: str) -> None:
        self.key = (checkpoint_id, thread_id, namespace)

    def __lt__(self, other: _Newest) -> bool:
        return self.key > other.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Newest) and self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(slots=True)
class _Stream:
    """The ids of one (thread, namespace), read a page at a time, newest first."""

    index: int
    thread_id: str
    namespace: str
    key: str
    upper: bytes
    buffer: deque[bytes] = field(default_factory=lambda: deque[bytes]())
    done: bool = False
    waiting: bool = True


class _Merge:
    """Newest-first merge of several id indexes, holding at most a page per index."""

    def __init__(self, prefix: str, streams: Sequence[tuple[str, str]], before: str | None) -> None:
        upper = b"(" + before.encode() if before is not None else b"+"
        self._streams = [
            _Stream(i, t, ns, ids_key(thread_base(prefix, t), ns), upper)
            for i, (t, ns) in enumerate(streams)
        ]
        self._page = max(4, min(_PAGE, _STREAM_BUDGET // max(1, len(streams))))
        self._heap: list[tuple[_Newest, int]] = []
        self._pending: list[_Stream] = []

    def refills(self) -> list[_Request]:
        """Return the reads of the next page of every stream that ran dry (at most a chunk)."""
        waiting = [s for s in self._streams if s.waiting and not s.done][:_CHUNK]
        self._pending = waiting
        return [("ZREVRANGEBYLEX", s.key, s.upper, "-", "LIMIT", 0, self._page) for s in waiting]

    def fill(self, replies: list[Any]) -> None:
        """Take the pages read for :meth:`refills`."""
        for stream, page in zip(self._pending, replies, strict=True):
            ids = cast(list[bytes], page)
            stream.waiting = False
            stream.done = len(ids) < self._page
            if ids:
                stream.upper = b"(" + ids[-1]
                stream.buffer.extend(ids)
                self._push(stream.index)
        self._pending = []

    def _push(self, index: int) -> None:
        stream = self._streams[index]
        newest = _Newest(stream.buffer.popleft().decode(), stream.thread_id, stream.namespace)
        heapq.heappush(self._heap, (newest, index))

    def take(self, n: int) -> list[tuple[str, str, str]]:
        """Pop up to ``n`` ids, newest first; fewer when a stream must be read further first."""
        out: list[tuple[str, str, str]] = []
        while self._heap and len(out) < n:
            top, index = heapq.heappop(self._heap)
            checkpoint_id, thread_id, namespace = top.key
            out.append((thread_id, namespace, checkpoint_id))
            stream = self._streams[index]
            if stream.buffer:
                self._push(index)
            elif not stream.done:
                stream.waiting = True
                break
        return out

    @property
    def finished(self) -> bool:
        """Whether every id was taken."""
        return not self._heap and all(s.done or not s.waiting for s in self._streams)


_LIST_MEMO_BYTES: Final = 64 << 20
"""Large values a listing keeps to hand to later checkpoints (then it starts over)."""


class _ListMemo:
    """The large values a listing read (decoded once), by thread, namespace, channel, version."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str, str], Blob | None] = {}
        self.size = 0

    @staticmethod
    def key(stored: StoredCheckpoint, channel: str) -> tuple[str, str, str, str]:
        record = stored.record
        return (record.thread_id, record.namespace, channel, record.channel_versions[channel])

    def add(self, key: tuple[str, str, str, str], value: Blob | None) -> None:
        self.values[key] = value
        self.size += len(value.data) if value is not None else 0

    def clear(self) -> None:
        self.values.clear()
        self.size = 0


def _list_op(prefix: str, query: ListQuery) -> _ListOp:
    remaining = query.limit
    if remaining is not None and remaining <= 0:
        return
    try:
        wanted = cast(dict[str, Any], json.loads(json.dumps(dict(query.metadata or {}))))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"redis checkpoint store: metadata filter is not JSON: {exc}"
        ) from exc
    if query.thread_id is not None:
        threads = [query.thread_id]
    else:
        found: set[str] = set()
        cursor = 0
        while True:
            (reply,) = yield _Batch((("SSCAN", threads_key(prefix), cursor, "COUNT", 1000),))
            cursor, members = cast(tuple[int, list[bytes]], reply)
            found.update(m.decode() for m in members)
            if int(cursor) == 0:
                break
        threads = sorted(found)
    streams: list[tuple[str, str]] = []
    if query.namespace is not None:
        streams = [(t, query.namespace) for t in threads]
    else:
        for start in range(0, len(threads), _CHUNK):
            chunk = threads[start : start + _CHUNK]
            replies = yield _Batch(
                tuple(("SMEMBERS", namespaces_key(thread_base(prefix, t))) for t in chunk)
            )
            for t, names in zip(chunk, replies, strict=True):
                streams += [(t, ns.decode()) for ns in sorted(cast(set[bytes], names))]
    memo = _ListMemo()
    if query.checkpoint_id is not None:
        if query.before is not None and not query.checkpoint_id < query.before:
            return
        merge = None
        pending = [(t, ns, query.checkpoint_id) for t, ns in sorted(streams, reverse=True)]
    else:
        merge = _Merge(prefix, streams, query.before)
        pending = []
    while True:
        if merge is not None:
            requests = merge.refills()
            if requests:
                merge.fill((yield _Batch(requests)))
                continue
            want = _FETCH if remaining is None or wanted else min(_FETCH, remaining)
            pending = merge.take(want)
        if not pending:
            if merge is None or merge.finished:
                return
            continue
        chunk, pending = pending[:_FETCH], pending[_FETCH:]
        if wanted:
            metas = yield _Batch(
                tuple(
                    ("HGET", checkpoint_key(thread_base(prefix, t), "c", ns, i), "m")
                    for t, ns, i in chunk
                )
            )
            chunk = [
                c
                for c, raw in zip(chunk, metas, strict=True)
                if raw is not None and metadata_matches(decode_metadata(cast(bytes, raw)), wanted)
            ]
            if not chunk:
                continue
        # one script call a page: a value the page's checkpoints share is sent once
        (replies,) = yield _Batch((_list_request(prefix, chunk),))
        listed: list[tuple[StoredCheckpoint, list[str]]] = []
        sent: dict[tuple[str, str, str, str], Blob] = {}
        for (t, ns, _), reply in zip(chunk, cast(list[bytes | None], replies), strict=True):
            if reply is None:
                continue
            stored, large = decode_stored(t, ns, reply, sent)
            if wanted and not metadata_matches(stored.record.metadata, wanted):
                continue
            listed.append((stored, large))
        # the checkpoints of a thread share most large values (the chunks of its history):
        # each is read once while the listing's memo holds it, not once per checkpoint
        if memo.size > _LIST_MEMO_BYTES:
            memo.clear()
        wanted_large: list[tuple[StoredCheckpoint, list[str]]] = []
        asked: set[tuple[str, str, str, str]] = set()
        for stored, large in listed:
            missing: list[str] = []
            for channel in large:
                key = memo.key(stored, channel)
                if key not in memo.values and key not in asked:
                    asked.add(key)
                    missing.append(channel)
            if missing:
                wanted_large.append((stored, missing))
        if wanted_large:
            reads = tuple(_large_request(prefix, stored, chans) for stored, chans in wanted_large)
            raws = cast(list[list[bytes | None]], (yield _Batch(reads)))
            for (stored, chans), raw in zip(wanted_large, raws, strict=True):
                for channel, value in zip(chans, raw, strict=True):
                    memo.add(memo.key(stored, channel), _blob_or_none(value))
        for stored, large in listed:
            if large:
                stored = _with_large(
                    stored, large, [memo.values[memo.key(stored, c)] for c in large]
                )
            yield stored
            if remaining is not None:
                remaining -= 1
                if remaining == 0:
                    return


# --- sending -------------------------------------------------------------------------------------


_IDLE_MAX: Final = 16
_RETRIES: Final = 3
"""Retries of a command whose connection failed (every store command is idempotent)."""


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(cap=0.5, base=0.01)


_BROKEN: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class _AsyncPipeline(Protocol):
    def execute_command(self, *args: _Arg) -> object: ...

    async def execute(self) -> list[Any]: ...


class _AsyncConnection(Protocol):
    socket_timeout: float | None

    async def send_packed_command(self, command: list[bytes]) -> None: ...

    async def read_response(self) -> Any: ...

    async def disconnect(self, nowait: bool = False) -> None: ...


class _AsyncPool(Protocol):
    connection_kwargs: dict[str, Any]

    def connection_class(self, **kwargs: Any) -> _AsyncConnection: ...


class _AsyncClient(Protocol):
    connection_pool: _AsyncPool

    async def execute_command(self, *args: _Arg) -> Any: ...

    def pipeline(self, transaction: bool = True) -> _AsyncPipeline: ...

    async def aclose(self) -> None: ...


class _SyncPipeline(Protocol):
    def execute_command(self, *args: _Arg) -> object: ...

    def execute(self) -> list[Any]: ...


class _SyncConnection(Protocol):
    def send_packed_command(self, command: list[bytes]) -> None: ...

    def read_response(self) -> Any: ...

    def disconnect(self) -> None: ...


class _SyncPool(Protocol):
    connection_kwargs: dict[str, Any]

    def connection_class(self, **kwargs: Any) -> _SyncConnection: ...


class _SyncClient(Protocol):
    connection_pool: _SyncPool

    def execute_command(self, *args: _Arg) -> Any: ...

    def pipeline(self, transaction: bool = True) -> _SyncPipeline: ...

    def close(self) -> None: ...


class _AsyncLane:
    """Connections of the store's own for one-command round trips (put, get, put_writes).

    redis-py's client and pool cost more per call than the round trip itself; here a command is
    packed once and written on an idle connection (same settings as the client's, except that
    the socket timeout is one ``asyncio.timeout`` around the round trip: redis-py spawns a task
    per write otherwise). A connection that fails is dropped, and the caller repeats the command
    through the client, whose retry policy applies (every store command is idempotent).
    """

    def __init__(self, client: _AsyncClient) -> None:
        pool = client.connection_pool
        self._new = pool.connection_class
        self._kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        self._timeout = pool.connection_class(**pool.connection_kwargs).socket_timeout
        self._idle: deque[_AsyncConnection] = deque()
        self._closed = False

    async def call(self, packed: bytes) -> Any:
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._new(**self._kwargs)
        try:
            async with asyncio.timeout(self._timeout):
                await connection.send_packed_command([packed])
                reply = await connection.read_response()
        except redis.exceptions.ResponseError:
            await self._release(connection)
            raise
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        await self._release(connection)
        return reply

    async def _release(self, connection: _AsyncConnection) -> None:
        if self._closed or len(self._idle) >= _IDLE_MAX:
            await connection.disconnect()
        else:
            self._idle.append(connection)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            await self._idle.pop().disconnect()


class _SyncLane:
    """The blocking twin of :class:`_AsyncLane` (thread-safe: ``deque`` pops and appends)."""

    def __init__(self, client: _SyncClient) -> None:
        self._pool = client.connection_pool
        self._idle: deque[_SyncConnection] = deque()
        self._closed = False

    def call(self, packed: bytes) -> Any:
        try:
            connection = self._idle.pop()
        except IndexError:
            connection = self._pool.connection_class(**self._pool.connection_kwargs)
        try:
            connection.send_packed_command([packed])
            reply = connection.read_response()
        except redis.exceptions.ResponseError:
            self._release(connection)
            raise
        except BaseException:
            connection.disconnect()
            raise
        self._release(connection)
        return reply

    def _release(self, connection: _SyncConnection) -> None:
        if self._closed or len(self._idle) >= _IDLE_MAX:
            connection.disconnect()
        else:
            self._idle.append(connection)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().disconnect()


def _address(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        return "the configured server"


def _error(exc: BaseException, address: str) -> CheckpointError:
    lines = str(exc).strip().splitlines()
    cause = lines[0] if lines else type(exc).__name__
    return CheckpointError(f"redis checkpoint store at {address}: {cause}")


_POOL_OPTIONS: Final = frozenset({"max_connections"})
"""URL query options redis-py's connection pool takes for itself (not its connections')."""


def _connection_options(connection_class: type) -> set[str]:
    """The keyword arguments a redis-py connection class takes (its own and its bases')."""
    names: set[str] = set()
    for klass in connection_class.__mro__:
        init = klass.__dict__.get("__init__")
        if klass is object or init is None:
            continue
        names.update(
            name
            for name, parameter in inspect.signature(init).parameters.items()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        )
    return names


def _url_problem(url: str, *, sync: bool) -> str | None:
    """Why redis-py cannot use ``url`` as meant (a database that is not a number included).

    A query option redis-py's connections do not take would otherwise pass ``from_url`` and
    fail as a ``TypeError`` at the first command. ``sync`` picks the blocking client's
    connection classes instead of the asyncio client's.
    """
    problem = redis_url_problem(url)
    if problem is not None:
        return problem
    try:
        # what from_url runs: a wrong option value, say
        parsed = cast("Mapping[str, object]", sync_parse_url(url)) if sync else parse_url(url)
        options: dict[str, object] = dict(parsed)
    except ValueError as exc:
        return str(exc)
    default = SyncConnection if sync else Connection
    connection_class = cast(type, options.pop("connection_class", default))
    unknown = sorted(set(options) - _connection_options(connection_class) - _POOL_OPTIONS)
    if not unknown:
        return None
    names = ", ".join(f"{name!r}" for name in unknown)
    hint = ""
    if "prefix" in unknown:
        hint = (
            "; the key prefix is the store's prefix argument (open_store and "
            "AGENTMESH_CHECKPOINT_URL read it from ?prefix=)"
        )
    return f"unsupported query option {names} (redis-py's connections do not take it){hint}"


class _Settings:
    """What both stores share: the URL, the prefix and the server's address for messages."""

    name: str = "redis"
    """The backend's name."""

    def __init__(self, url: str, prefix: str, *, sync: bool) -> None:
        problem = _url_problem(url, sync=sync)
        if problem is not None:
            raise ConfigError(f"redis checkpoint store: invalid URL: {problem}")
        if not prefix:
            raise CheckpointError("redis checkpoint store: the key prefix must not be empty")
        self._url = url
        self._location = checkpoint_store_url(url)  # read at every LangGraph step
        if prefix != DEFAULT_PREFIX:  # the URL open_store reads back as this store
            self._location = with_query_option(self._location, "prefix", prefix)
        self._prefix = prefix
        self._address = _address(url)
        self._closed = False

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    @property
    def address(self) -> str:
        """``host:port`` of the server (no credentials)."""
        return self._address

    @property
    def location(self) -> str:
        """Where the checkpoints live: the store's URL, password masked.

        A prefix other than the default is named as ``?prefix=`` (what :func:`open_store`
        reads), so the URL opens this very store again.
        """
        return self._location

    def _check_open(self) -> None:
        if self._closed:
            raise CheckpointError(f"redis checkpoint store at {self._address}: store is closed")


class RedisCheckpointStore(_Settings):
    """A checkpoint store in plain Redis 7, on the asyncio client.

    Use it as ``async with RedisCheckpointStore(url) as store:`` (entering connects and loads
    the scripts); it connects on first use otherwise. One event loop per store.

    Args:
        url: ``redis://[user:password@]host:port/db`` (redis-py URL; query options such as
            ``socket_timeout`` are passed on).
        prefix: Start of every key (stores with different prefixes share a database safely);
            a URL names it as ``?prefix=`` (see :func:`~agentmesh.checkpoint.store.open_store`).

    Raises:
        ConfigError: The URL is not one redis-py can use: another scheme, a port or a database
            that is not a number (redis-py would read ``/abc`` as database 0), a query option
            redis-py's connections do not take.
        CheckpointError: The prefix is empty.
    """

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(url, prefix, sync=False)
        self._client: _AsyncClient | None = None
        self._lane: _AsyncLane | None = None

    def _connection(self) -> _AsyncClient:
        self._check_open()
        if self._client is None:
            client = aioredis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
                self._url, decode_responses=False, retry=AsyncRetry(_backoff(), _RETRIES)
            )
            self._client = cast(_AsyncClient, client)
            self._lane = _AsyncLane(self._client)
        return self._client

    async def open(self) -> Self:
        """Connect and load the scripts (one round trip).

        Returns:
            The store.

        Raises:
            CheckpointError: Redis cannot be reached or refuses.
        """
        client = self._connection()
        try:
            await self._load(client, SCRIPTS)
        except _FAILURES as exc:
            raise _error(exc, self._address) from exc
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections; later calls raise. Closing twice is harmless."""
        self._closed = True
        client, self._client = self._client, None
        lane, self._lane = self._lane, None
        if client is not None:
            try:
                if lane is not None:
                    await lane.close()
                await client.aclose()
            except _FAILURES as exc:
                _log.warning("redis_checkpoint_store_close_failed", reason=str(exc))

    @staticmethod
    async def _load(client: _AsyncClient, scripts: Sequence[Script]) -> None:
        pipe = client.pipeline(transaction=False)
        for script in scripts:
            pipe.execute_command("SCRIPT", "LOAD", script.source)
        await pipe.execute()

    async def _send(self, client: _AsyncClient, requests: Sequence[_Request]) -> list[Any]:
        if len(requests) == 1:
            args = _wire(requests[0])
            if self._lane is not None:
                try:
                    return [await self._lane.call(_pack(args))]
                except _BROKEN:
                    pass  # a stale connection: the client sends it again, retrying
            return [await client.execute_command(*args)]
        pipe = client.pipeline(transaction=False)
        for request in requests:
            pipe.execute_command(*_wire(request))
        return list(await pipe.execute())

    async def _exec(self, batch: _Batch) -> list[Any]:
        client = self._connection()
        try:
            try:
                return await self._send(client, batch.requests)
            except redis.exceptions.NoScriptError:
                await self._load(client, _scripts_of(batch.requests))
                return await self._send(client, batch.requests)
        except _FAILURES as exc:
            raise _error(exc, self._address) from exc

    async def _run(self, op: _Op[_R]) -> _R:
        reply: list[Any] | None = None
        try:
            while True:
                reply = await self._exec(op.send(cast(list[Any], reply)))
        except StopIteration as stop:
            return cast(_R, stop.value)
        finally:
            op.close()

    async def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """Store a checkpoint and its new blobs in one atomic script (see the protocol).

        Args:
            record: The checkpoint.
            blobs: New values by ``(channel, version)``; stored once per version.
            extends: With ``check_extends``: the newest checkpoint the writer expects.
            check_extends: Compare-and-set on the namespace's newest checkpoint.

        Raises:
            CheckpointConflictError: Another writer extended the chain first.
            CheckpointError: Redis failed.
        """
        await self._run(_put_op(self._prefix, record, blobs, extends, check_extends))

    async def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Store pending writes atomically (``idx < 0`` replaces, others insert-if-absent).

        Args:
            thread_id: The thread.
            namespace: The namespace.
            checkpoint_id: The checkpoint the writes belong to.
            writes: The writes.

        Raises:
            CheckpointError: Redis failed.
        """
        await self._run(_put_writes_op(self._prefix, thread_id, namespace, checkpoint_id, writes))

    async def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """Read a checkpoint with its values and writes in one script.

        Args:
            thread_id: The thread.
            namespace: The namespace.
            checkpoint_id: The checkpoint; the newest when ``None``.
            skip_channels: Channels whose values are not read.

        Returns:
            The checkpoint, or ``None``.

        Raises:
            CheckpointError: Redis failed.
        """
        op = _get_op(self._prefix, thread_id, namespace, checkpoint_id, skip_channels)
        return await self._run(op)

    async def list(self, query: ListQuery) -> AsyncIterator[StoredCheckpoint]:
        """Checkpoints matching the query, newest first, read in batches.

        Args:
            query: What to list.

        Yields:
            The checkpoints.

        Raises:
            CheckpointError: Redis failed.
        """
        op = _list_op(self._prefix, query)
        reply: list[Any] | None = None
        try:
            while True:
                try:
                    step = op.send(cast(list[Any], reply))
                except StopIteration:
                    return
                if isinstance(step, _Batch):
                    reply = await self._exec(step)
                else:
                    reply = []
                    yield step
        finally:
            op.close()

    async def delete_thread(self, thread_id: str) -> int:
        """Delete every checkpoint, blob and write of a thread.

        Args:
            thread_id: The thread.

        Returns:
            The number of checkpoints deleted.

        Raises:
            CheckpointError: Redis failed.
        """
        return await self._run(_delete_threads_op(self._prefix, [thread_id]))

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints these runs wrote, and their writes.

        Args:
            run_ids: The runs.

        Raises:
            CheckpointError: Redis failed.
        """
        await self._run(_delete_runs_op(self._prefix, run_ids))

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's checkpoints, blobs and writes under another id.

        Args:
            source_thread_id: The thread copied.
            target_thread_id: The new thread id.

        Raises:
            CheckpointError: Redis failed.
        """
        await self._run(_copy_op(self._prefix, source_thread_id, target_thread_id))

    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> int:
        """Keep only each namespace's newest checkpoint (or nothing) of these threads.

        Args:
            thread_ids: The threads.
            keep_latest: Keep the newest checkpoint of each namespace.

        Returns:
            The number of checkpoints deleted.

        Raises:
            CheckpointError: Redis failed.
        """
        return await self._run(_prune_op(self._prefix, thread_ids, keep_latest))

    async def expire(self, older_than: float) -> int:
        """Delete threads whose last checkpoint put (Redis clock) is older than a time.

        Args:
            older_than: Unix time in seconds.

        Returns:
            The number of threads deleted.

        Raises:
            CheckpointError: Redis failed.
        """
        return await self._run(_expire_op(self._prefix, older_than))

    async def size_bytes(self) -> int:
        """Sum of ``MEMORY USAGE … SAMPLES 0`` (exact) over the store's keys (``SCAN``).

        Returns:
            Bytes.

        Raises:
            CheckpointError: Redis failed.
        """
        return await self._run(_size_op(self._prefix))


class SyncRedisCheckpointStore(_Settings):
    """The blocking twin of :class:`RedisCheckpointStore`: same data, same methods, no awaits.

    Use it as ``with SyncRedisCheckpointStore(url) as store:``; it connects on first use
    otherwise. Safe to share between threads (redis-py's connection pool).

    Args:
        url: ``redis://[user:password@]host:port/db``.
        prefix: Start of every key; the same prefix as an async store reads the same data.

    Raises:
        ConfigError: The URL is not one redis-py can use (see :class:`RedisCheckpointStore`).
        CheckpointError: The prefix is empty.
    """

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        super().__init__(url, prefix, sync=True)
        self._client: _SyncClient | None = None
        self._lane: _SyncLane | None = None
        self._lock = threading.Lock()

    def _connection(self) -> _SyncClient:
        self._check_open()
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    made = redis.Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
                        self._url, decode_responses=False, retry=Retry(_backoff(), _RETRIES)
                    )
                    self._lane = _SyncLane(cast(_SyncClient, made))
                    self._client = cast(_SyncClient, made)
                client = self._client
        return client

    def open(self) -> Self:
        """Connect and load the scripts (one round trip).

        Returns:
            The store.

        Raises:
            CheckpointError: Redis cannot be reached or refuses.
        """
        client = self._connection()
        try:
            self._load(client, SCRIPTS)
        except _FAILURES as exc:
            raise _error(exc, self._address) from exc
        return self

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections; later calls raise. Closing twice is harmless."""
        self._closed = True
        client, self._client = self._client, None
        lane, self._lane = self._lane, None
        if client is not None:
            try:
                if lane is not None:
                    lane.close()
                client.close()
            except _FAILURES as exc:
                _log.warning("redis_checkpoint_store_close_failed", reason=str(exc))

    @staticmethod
    def _load(client: _SyncClient, scripts: Sequence[Script]) -> None:
        pipe = client.pipeline(transaction=False)
        for script in scripts:
            pipe.execute_command("SCRIPT", "LOAD", script.source)
        pipe.execute()

    def _send(self, client: _SyncClient, requests: Sequence[_Request]) -> list[Any]:
        if len(requests) == 1:
            args = _wire(requests[0])
            if self._lane is not None:
                try:
                    return [self._lane.call(_pack(args))]
                except _BROKEN:
                    pass  # a stale connection: the client sends it again, retrying
            return [client.execute_command(*args)]
        pipe = client.pipeline(transaction=False)
        for request in requests:
            pipe.execute_command(*_wire(request))
        return list(pipe.execute())

    def _exec(self, batch: _Batch) -> list[Any]:
        client = self._connection()
        try:
            try:
                return self._send(client, batch.requests)
            except redis.exceptions.NoScriptError:
                self._load(client, _scripts_of(batch.requests))
                return self._send(client, batch.requests)
        except _FAILURES as exc:
            raise _error(exc, self._address) from exc

    def _run(self, op: _Op[_R]) -> _R:
        reply: list[Any] | None = None
        try:
            while True:
                reply = self._exec(op.send(cast(list[Any], reply)))
        except StopIteration as stop:
            return cast(_R, stop.value)
        finally:
            op.close()

    def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """Blocking :meth:`RedisCheckpointStore.put` (same script, same compare-and-set)."""
        self._run(_put_op(self._prefix, record, blobs, extends, check_extends))

    def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Blocking :meth:`RedisCheckpointStore.put_writes`."""
        self._run(_put_writes_op(self._prefix, thread_id, namespace, checkpoint_id, writes))

    def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """Blocking :meth:`RedisCheckpointStore.get`."""
        op = _get_op(self._prefix, thread_id, namespace, checkpoint_id, skip_channels)
        return self._run(op)

    def list(self, query: ListQuery) -> Iterator[StoredCheckpoint]:
        """Blocking :meth:`RedisCheckpointStore.list` (an iterator, read in batches)."""
        op = _list_op(self._prefix, query)
        reply: list[Any] | None = None
        try:
            while True:
                try:
                    step = op.send(cast(list[Any], reply))
                except StopIteration:
                    return
                if isinstance(step, _Batch):
                    reply = self._exec(step)
                else:
                    reply = []
                    yield step
        finally:
            op.close()

    def delete_thread(self, thread_id: str) -> None:
        """Blocking :meth:`RedisCheckpointStore.delete_thread`."""
        self._run(_delete_threads_op(self._prefix, [thread_id]))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Blocking :meth:`RedisCheckpointStore.delete_for_runs`."""
        self._run(_delete_runs_op(self._prefix, run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Blocking :meth:`RedisCheckpointStore.copy_thread`."""
        self._run(_copy_op(self._prefix, source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> None:
        """Blocking :meth:`RedisCheckpointStore.prune`."""
        self._run(_prune_op(self._prefix, thread_ids, keep_latest))

    def expire(self, older_than: float) -> int:
        """Blocking :meth:`RedisCheckpointStore.expire` (returns the threads deleted)."""
        return self._run(_expire_op(self._prefix, older_than))

    def size_bytes(self) -> int:
        """Blocking :meth:`RedisCheckpointStore.size_bytes`."""
        return self._run(_size_op(self._prefix))
