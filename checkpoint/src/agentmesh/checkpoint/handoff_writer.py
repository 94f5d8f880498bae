"""Handoff checkpoints written in the background: :class:`HandoffCheckpointWriter`.

The instrumentation captures the context that crosses every handoff (a LangGraph node handing
state to the next, a CrewAI task output given to the next agent, a delegation) and hands it to
this writer. :meth:`HandoffCheckpointWriter.submit` returns the new checkpoint's id at once, so
the handoff span can carry it, and queues the write; a daemon thread running its own asyncio
loop serialises the context (:class:`~agentmesh.checkpoint.serde.SafeSerializer`) and puts it
in the store named by a URL (:func:`~agentmesh.checkpoint.store.open_store`).

What is stored, per handoff: a checkpoint in thread ``run_id``, namespace ``"handoff"``, whose
parent is the previous handoff checkpoint of the same run (as submitted in this process), with
metadata ``{"kind": "handoff", "source", "target", "digest", "trace_id", "span_id"}`` (and
``"handoff_kind"`` when given) and one channel, ``"context"``, holding the context.
:func:`read_handoff` and :func:`handoff_history` read them back from any store.

The application is never held up and never sees an error: the queue is bounded (a handoff
arriving when it is full is dropped and counted), a store that is down or a context that cannot
be serialised is counted and logged (once per kind, then at most once a minute), and
:meth:`~HandoffCheckpointWriter.close` waits a bounded time. At interpreter exit the queue is
flushed for at most 2 s in all, early in the shutdown (before thread pools stop taking work, so
a store that runs blocking calls in an executor can still write). An id returned by ``submit``
names a checkpoint that was queued; whether it was written shows in
:meth:`~HandoffCheckpointWriter.stats` (and in the store).

Snapshot cost: ``submit`` copies the context's built-in containers (dicts, lists, tuples, sets,
recursively; about one pointer copy per item, less work than the digest the span already
takes) so that the application mutating them after the handoff does not change what is stored.
Other objects (strings, pydantic models, LangChain messages) are shared, not copied: one that
is changed in place before the writer serialises it is stored as changed.

Example:
    >>> writer = HandoffCheckpointWriter("memory://")
    >>> checkpoint_id = writer.submit(
    ...     "run-1", {"task": "otters"}, source="planner", target="researcher",
    ...     digest="sha256:…", trace_id="ab" * 16, span_id="cd" * 8,
    ... )
    >>> writer.flush(timeout=5.0)
    True
    >>> stored = writer.read("run-1", checkpoint_id)
    >>> stored is not None and stored.context
    {'task': 'otters'}
    >>> writer.close()
    True
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib
import random
import threading
import time
import uuid
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar, cast

from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    CheckpointStore,
    ListQuery,
    StoredCheckpoint,
)
from agentmesh.core.errors import CheckpointError, ConfigError
from agentmesh.core.log import get_logger
from agentmesh.core.urls import checkpoint_store_url

__all__ = [
    "CONTEXT_CHANNEL",
    "HANDOFF_NAMESPACE",
    "HandoffCheckpoint",
    "HandoffCheckpointWriter",
    "WriterStats",
    "handoff_history",
    "new_checkpoint_id",
    "read_handoff",
    "store_kind",
]

_log = get_logger(__name__)

HANDOFF_NAMESPACE: Final = "handoff"
"""The checkpoint namespace handoff checkpoints are written in (thread: the run id)."""

CONTEXT_CHANNEL: Final = "context"
"""The one channel of a handoff checkpoint: the context that crossed."""

DEFAULT_QUEUE_SIZE: Final = 1_000
"""Handoffs waiting to be written, at most, before new ones are dropped."""

_EXIT_TIMEOUT_S: Final = 2.0
"""Longest time the exit hook waits for the queue to drain."""
_OPEN_TIMEOUT_S: Final = 10.0
"""Longest time opening the store may take before it counts as down."""
_PUT_TIMEOUT_S: Final = 10.0
"""Longest time one put may take before it counts as failed."""
_BACKOFF_MIN_S: Final = 0.5
_BACKOFF_MAX_S: Final = 30.0
_LOG_EVERY_S: Final = 60.0
"""A failure of a kind already logged is logged again at most this often (with a count)."""
_RUNS_REMEMBERED: Final = 4_096
"""Runs whose latest handoff checkpoint is remembered (to chain the next one to it)."""
_SNAPSHOT_DEPTH: Final = 64
"""Container nesting copied by the snapshot; deeper containers are shared."""
_GREGORIAN_OFFSET: Final = 0x01B21DD213814000
"""100-ns intervals from 1582-10-15 (the UUID epoch) to 1970-01-01."""

_SCHEME_KINDS: Final = {
    "memory": "memory",
    "duckdb": "duckdb",
    "redis": "redis",
    "rediss": "redis",
    "postgres": "postgres",
    "postgresql": "postgres",
}

_T = TypeVar("_T")


class _ExitHooks:
    """Flush every live writer when the interpreter exits, within one shared 2 s budget.

    Two hooks: one in ``threading``'s shutdown, which runs before thread pools stop taking
    work (a store that runs blocking calls in an executor, DuckDB's, can still write), and a
    standard ``atexit`` one for what is left. The first flushes (and closes, when no other
    non-daemon thread is running that could still hand off work); the second closes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writers: weakref.WeakSet[HandoffCheckpointWriter] = weakref.WeakSet()
        self._registered = False
        self._deadline: float | None = None

    def add(self, writer: HandoffCheckpointWriter) -> None:
        with self._lock:
            self._writers.add(writer)
            if self._registered:
                return
            self._registered = True
        importlib.import_module("concurrent.futures.thread")  # its exit hook goes first

        register: Any = getattr(threading, "_register_atexit", None)
        if callable(register):
            with contextlib.suppress(RuntimeError):  # already shutting down
                register(self._before_threads_join)
        atexit.register(self._at_exit)

    def discard(self, writer: HandoffCheckpointWriter) -> None:
        with self._lock:
            self._writers.discard(writer)

    def _left(self) -> float:
        now = time.monotonic()
        with self._lock:
            if self._deadline is None:
                self._deadline = now + _EXIT_TIMEOUT_S
            return max(self._deadline - now, 0.0)

    def _live(self) -> list[HandoffCheckpointWriter]:
        with self._lock:
            return list(self._writers)

    def _before_threads_join(self) -> None:
        others = [
            t for t in threading.enumerate() if not t.daemon and t is not threading.current_thread()
        ]
        for writer in self._live():
            if others:  # they may still hand off work: flush now, close at exit
                writer.flush(self._left())
            else:
                writer.close(self._left())

    def _at_exit(self) -> None:
        for writer in self._live():
            writer.close(self._left())


_exit_hooks: Final = _ExitHooks()


class _Serde(Protocol):
    """The serializer surface the writer uses (LangGraph's ``SerializerProtocol`` subset)."""

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]: ...

    def loads_typed(self, data: tuple[str, bytes]) -> Any: ...


def _default_serde() -> _Serde:
    from agentmesh.checkpoint.serde import SafeSerializer

    return cast(_Serde, SafeSerializer())


# --- ids ------------------------------------------------------------------------------------


class _IdClock:
    """Time-ordered ids in the UUID version 6 layout, strictly increasing within a process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> str:
        ticks = time.time_ns() // 100 + _GREGORIAN_OFFSET
        with self._lock:
            if ticks <= self._last:
                ticks = self._last + 1
            self._last = ticks
        value = (
            (ticks >> 12) << 80  # time_high and time_mid: the 48 high bits of the timestamp
            | 0x6 << 76  # version 6
            | (ticks & 0xFFF) << 64  # time_low
            | 0b10 << 62  # RFC 4122 variant
            | random.getrandbits(62)  # clock sequence and node
        )
        return str(uuid.UUID(int=value))


_CLOCK: Final = _IdClock()


def new_checkpoint_id() -> str:
    """Make a new checkpoint id: a UUID version 6, so later ids sort after earlier ones.

    Ids made in one process are strictly increasing (as strings too); ids of different
    processes interleave by their time. The layout is LangGraph's (``uuid6``).

    Returns:
        The id, as a lowercase UUID string.

    Example:
        >>> first, second = new_checkpoint_id(), new_checkpoint_id()
        >>> first < second, uuid.UUID(first).version
        (True, 6)
    """
    return _CLOCK.next()


def store_kind(url: str) -> str:
    """Tell the store kind a checkpoint URL names, without opening it.

    Args:
        url: A store URL (``duckdb:///…``, ``redis://…``, ``postgresql://…``, ``memory://``).

    Returns:
        ``"memory"``, ``"duckdb"``, ``"redis"`` or ``"postgres"``; otherwise the URL's scheme.

    Example:
        >>> store_kind("postgresql://localhost/app"), store_kind("rediss://cache:6380/0")
        ('postgres', 'redis')
    """
    scheme = url.partition("://")[0].lower()
    return _SCHEME_KINDS.get(scheme, scheme)


# --- snapshot -------------------------------------------------------------------------------


def _snapshot(value: object, depth: int = 0) -> object:
    """Copy built-in containers (recursively, to a depth); share every other object."""
    if depth >= _SNAPSHOT_DEPTH:
        return value
    if isinstance(value, dict):
        mapping = cast("dict[object, object]", value)
        return {key: _snapshot(item, depth + 1) for key, item in mapping.items()}
    if isinstance(value, list):
        return [_snapshot(item, depth + 1) for item in cast("list[object]", value)]
    if type(value) is tuple:  # not named tuples: those keep their type
        return tuple(_snapshot(item, depth + 1) for item in cast("tuple[object, ...]", value))
    if isinstance(value, set):
        return set(cast("set[object]", value))
    return value


# --- reading back ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HandoffCheckpoint:
    """A handoff checkpoint read back from a store.

    Attributes:
        checkpoint_id: Its id (what the handoff span carries).
        parent_id: The previous handoff checkpoint of the run, if any.
        run_id: The run (the checkpoint's thread).
        metadata: ``kind``, ``source``, ``target``, ``digest``, ``trace_id``, ``span_id``
            (and ``handoff_kind`` when it was given).
        context: The context that crossed, deserialised.
    """

    checkpoint_id: str
    parent_id: str | None
    run_id: str
    metadata: Mapping[str, Any]
    context: Any


def _decoded(stored: StoredCheckpoint, serde: _Serde) -> HandoffCheckpoint:
    blob = stored.values.get(CONTEXT_CHANNEL)
    context = serde.loads_typed((blob.type, blob.data)) if blob is not None else None
    record = stored.record
    return HandoffCheckpoint(
        checkpoint_id=record.checkpoint_id,
        parent_id=record.parent_id,
        run_id=record.thread_id,
        metadata=record.metadata,
        context=context,
    )


async def read_handoff(
    store: CheckpointStore,
    run_id: str,
    checkpoint_id: str | None = None,
    *,
    serde: _Serde | None = None,
) -> HandoffCheckpoint | None:
    """Read one handoff checkpoint of a run (the latest when no id is given).

    Args:
        store: An open store.
        run_id: The run.
        checkpoint_id: The checkpoint (a handoff span's ``agentmesh.handoff.checkpoint.id``).
        serde: The serializer the context was written with (default: ``SafeSerializer``).

    Returns:
        The checkpoint, or ``None`` when the store does not hold it.

    Raises:
        CheckpointError: The store failed, or the stored context cannot be deserialised.
    """
    stored = await store.get(run_id, HANDOFF_NAMESPACE, checkpoint_id)
    if stored is None:
        return None
    return _decoded(stored, serde if serde is not None else _default_serde())


async def handoff_history(
    store: CheckpointStore, run_id: str, *, serde: _Serde | None = None
) -> list[HandoffCheckpoint]:
    """Read every handoff checkpoint of a run, newest first.

    Args:
        store: An open store.
        run_id: The run.
        serde: The serializer the contexts were written with (default: ``SafeSerializer``).

    Returns:
        The checkpoints, newest first.

    Raises:
        CheckpointError: The store failed, or a stored context cannot be deserialised.
    """
    chosen = serde if serde is not None else _default_serde()
    query = ListQuery(thread_id=run_id, namespace=HANDOFF_NAMESPACE)
    return [_decoded(stored, chosen) async for stored in store.list(query)]


# --- the writer -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Counters of a :class:`HandoffCheckpointWriter` since it was made.

    Attributes:
        submitted: Handoffs accepted into the queue.
        written: Checkpoints the store acknowledged.
        queue_full: Handoffs dropped because the queue was full.
        serde_failed: Handoffs whose context could not be serialised.
        store_failed: Handoffs not written because the store was down or refused them.
        dropped_at_close: Handoffs still queued when :meth:`HandoffCheckpointWriter.close`
            gave up waiting, or submitted after it.
        pending: Handoffs queued or being written now.
    """

    submitted: int = 0
    written: int = 0
    queue_full: int = 0
    serde_failed: int = 0
    store_failed: int = 0
    dropped_at_close: int = 0
    pending: int = 0


@dataclass(frozen=True, slots=True)
class _Item:
    run_id: str
    checkpoint_id: str
    parent_id: str | None
    context: object
    metadata: Mapping[str, str]
    created_at: float


class _Throttle:
    """Log a failure the first time, then at most once per interval per kind (with a count)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._since: dict[str, int] = {}

    def warn(self, kind: str, **fields: object) -> None:
        now = time.monotonic()
        with self._lock:
            self._since[kind] = self._since.get(kind, 0) + 1
            last = self._last.get(kind)
            if last is not None and now - last < _LOG_EVERY_S:
                return
            self._last[kind] = now
            count = self._since.pop(kind)
        with contextlib.suppress(Exception):  # logging must never fail the app
            _log.warning("handoff_checkpoint_" + kind, occurrences=count, **fields)


class HandoffCheckpointWriter:
    """Write handoff checkpoints to a store from a background thread, never blocking the app.

    The writer starts a daemon thread running its own asyncio loop; the store is opened there
    (and re-opened after a failure, with backoff) and is only ever used from that loop. An exit
    hook flushes the queue for at most 2 s. A writer does not cross ``fork()``: a child process
    makes its own.

    Args:
        url: The store URL (``memory://``, ``duckdb:///path.duckdb``, ``redis://host:6379/0``,
            ``postgresql://user@host/db``).
        queue_size: Handoffs that may wait to be written; more are dropped and counted.
        store_factory: Build the store instead of opening ``url`` (tests, custom stores);
            called on the writer's thread.
        serde: The serializer of contexts (default: ``SafeSerializer``).

    Raises:
        ValueError: ``queue_size`` is below 1.
    """

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        store_factory: Callable[[], CheckpointStore] | None = None,
        serde: _Serde | None = None,
    ) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        self.url = url
        self.kind = store_kind(url)
        self.location = checkpoint_store_url(url)
        """Where the checkpoints go: the store's URL, password masked (as spans record it)."""
        self._queue_size = queue_size
        self._store_factory = store_factory
        self._serde = serde
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._queue: deque[_Item] = deque()
        self._busy = 0  # items taken off the queue and not finished yet
        self._idle = False
        self._closing = False
        self._abandoned = False
        self._parents: OrderedDict[str, str] = OrderedDict()
        self._counts: dict[str, int] = dict.fromkeys(
            ("submitted", "written", "queue_full", "serde_failed", "store_failed", "dropped"), 0
        )
        self._throttle = _Throttle()
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._thread = threading.Thread(
            target=self._run, name="agentmesh-handoff-checkpoints", daemon=True
        )
        self._thread.start()
        _exit_hooks.add(self)

    # --- the application's side (any thread) ------------------------------------------------

    def submit(
        self,
        run_id: str,
        context: object,
        *,
        source: str,
        target: str,
        digest: str,
        trace_id: str,
        span_id: str,
        handoff_kind: str | None = None,
    ) -> str | None:
        """Queue a handoff checkpoint and return its id at once (never raises, never blocks).

        The context's containers are copied now (see the module notes on the cost); it is
        serialised and written later, on the writer's thread.

        Args:
            run_id: The run; the checkpoint's thread.
            context: The context that crossed the handoff.
            source: The agent handing over.
            target: The agent receiving.
            digest: The digest of the context the handoff span carries.
            trace_id: The handoff span's trace id (hex).
            span_id: The handoff span's id (hex).
            handoff_kind: How the work crossed (``edge``, ``command``, ``task_context``…).

        Returns:
            The checkpoint id, or ``None`` when the handoff was dropped at once (queue full,
            writer closed). An id is no promise that the write succeeds (see :meth:`stats`).
        """
        try:
            return self._submit(
                run_id, context, source, target, digest, trace_id, span_id, handoff_kind
            )
        except Exception as exc:  # noqa: BLE001 - fail-open: never raise into the app
            self._throttle.warn("submit_failed", error_type=type(exc).__name__, error=str(exc))
            return None

    def _submit(
        self,
        run_id: str,
        context: object,
        source: str,
        target: str,
        digest: str,
        trace_id: str,
        span_id: str,
        handoff_kind: str | None,
    ) -> str | None:
        metadata = {
            "kind": "handoff",
            "source": source,
            "target": target,
            "digest": digest,
            "trace_id": trace_id,
            "span_id": span_id,
        }
        if handoff_kind is not None:
            metadata["handoff_kind"] = handoff_kind
        snapshot = _snapshot(context)
        wake = False
        checkpoint_id: str | None = None
        with self._lock:
            if self._closing:
                self._counts["dropped"] += 1
                return None
            if len(self._queue) >= self._queue_size:
                self._counts["queue_full"] += 1
            else:
                checkpoint_id = new_checkpoint_id()
                parent = self._parents.pop(run_id, None)
                self._parents[run_id] = checkpoint_id
                if len(self._parents) > _RUNS_REMEMBERED:
                    self._parents.popitem(last=False)
                self._queue.append(
                    _Item(run_id, checkpoint_id, parent, snapshot, metadata, time.time())
                )
                self._counts["submitted"] += 1
                if self._idle:
                    self._idle = False
                    wake = True
        if checkpoint_id is None:
            self._throttle.warn("queue_full", queue_size=self._queue_size)
            return None
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing to wake
                self._loop.call_soon_threadsafe(self._wake.set)
        return checkpoint_id

    def stats(self) -> WriterStats:
        """Read the writer's counters.

        Returns:
            A snapshot of the counters.
        """
        with self._lock:
            counts = dict(self._counts)
            pending = len(self._queue) + self._busy
        return WriterStats(
            submitted=counts["submitted"],
            written=counts["written"],
            queue_full=counts["queue_full"],
            serde_failed=counts["serde_failed"],
            store_failed=counts["store_failed"],
            dropped_at_close=counts["dropped"],
            pending=pending,
        )

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every handoff submitted so far is written (or failed), up to a bound.

        Args:
            timeout: Longest wait in seconds.

        Returns:
            Whether the queue drained in time.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._drained:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._drained.wait(left)
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (up to ``timeout``), close the store and stop the thread.

        Handoffs submitted afterwards are dropped (``submit`` returns ``None``). Never raises.

        Args:
            timeout: Longest wait in seconds.

        Returns:
            Whether everything queued was handled and the thread stopped in time.
        """
        with self._lock:
            already = self._closing
            self._closing = True
            wake = self._idle
            self._idle = False
        if not already:
            _exit_hooks.discard(self)
        if wake:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                self._loop.call_soon_threadsafe(self._wake.set)
        self._thread.join(max(timeout, 0.0))
        if not self._thread.is_alive():
            return True
        with self._lock:
            self._abandoned = True
            left = len(self._queue)
            self._counts["dropped"] += left
            self._queue.clear()
            self._drained.notify_all()
        if left:
            self._throttle.warn("dropped_at_close", handoffs=left)
        return False

    def read(
        self, run_id: str, checkpoint_id: str | None = None, *, timeout: float = 5.0
    ) -> HandoffCheckpoint | None:
        """Read one handoff checkpoint back through the writer's own store (blocking).

        Meant for tests and tools (a ``memory://`` store is reachable only this way).

        Args:
            run_id: The run.
            checkpoint_id: The checkpoint; the run's latest when ``None``.
            timeout: Longest wait in seconds.

        Returns:
            The checkpoint, or ``None`` when the store does not hold it.

        Raises:
            CheckpointError: The store is not open, failed, or did not answer in time.
        """
        return self._call(
            lambda store: read_handoff(store, run_id, checkpoint_id, serde=self._serde),
            timeout,
        )

    def history(self, run_id: str, *, timeout: float = 5.0) -> list[HandoffCheckpoint]:
        """Read every handoff checkpoint of a run through the writer's store, newest first.

        Args:
            run_id: The run.
            timeout: Longest wait in seconds.

        Returns:
            The checkpoints, newest first.

        Raises:
            CheckpointError: The store is not open, failed, or did not answer in time.
        """
        return self._call(lambda store: handoff_history(store, run_id, serde=self._serde), timeout)

    def _call(
        self, call: Callable[[CheckpointStore], Coroutine[Any, Any, _T]], timeout: float
    ) -> _T:
        async def on_loop() -> _T:
            store = self._store
            if store is None:
                await self._ensure_store()
                store = self._store
            if store is None:
                raise CheckpointError(f"handoff checkpoint store {self.kind} is not open")
            return await call(store)

        try:
            future = asyncio.run_coroutine_threadsafe(on_loop(), self._loop)
        except RuntimeError as exc:
            raise CheckpointError(f"handoff checkpoint writer ({self.kind}) is closed") from exc
        try:
            return future.result(timeout)
        except TimeoutError as exc:
            future.cancel()
            raise CheckpointError(
                f"handoff checkpoint store {self.kind} did not answer within {timeout} s"
            ) from exc

    # --- the writer's thread ----------------------------------------------------------------

    _store: CheckpointStore | None = None
    _broken: bool = False
    _retry_at: float = 0.0
    _backoff: float = _BACKOFF_MIN_S

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - the thread must end quietly
            self._throttle.warn("writer_crashed", error_type=type(exc).__name__, error=str(exc))
        finally:
            with contextlib.suppress(Exception):  # best effort
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            with self._lock:
                self._drained.notify_all()

    async def _main(self) -> None:
        try:
            while True:
                batch = self._take()
                if batch is None:
                    return
                if not batch:
                    await self._wake.wait()
                    continue
                for done, item in enumerate(batch):
                    if self._abandoned:
                        with self._lock:
                            self._counts["dropped"] += len(batch) - done
                        return
                    try:
                        await self._write(item)
                    except Exception as exc:  # noqa: BLE001 - a bug here must not stop the writer
                        self._count("store_failed")
                        self._throttle.warn("write_crashed", error_type=type(exc).__name__)
                    with self._lock:
                        self._busy -= 1
                        if not self._queue and not self._busy:
                            self._drained.notify_all()
        finally:
            await self._close_store()

    def _take(self) -> list[_Item] | None:
        """Take every queued item: ``[]`` when none is queued, ``None`` when it is time to stop."""
        with self._lock:
            if self._queue:
                batch = list(self._queue)
                self._queue.clear()
                self._busy += len(batch)
                return batch
            if self._closing or self._abandoned:
                return None
            self._idle = True
            self._wake.clear()
            return []

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _failed(self, when: float) -> None:
        """Back off: no store call before a delay that doubles with each failure."""
        self._retry_at = when + self._backoff
        self._backoff = min(self._backoff * 2, _BACKOFF_MAX_S)

    async def _ensure_store(self) -> None:
        if self._store is not None or self._broken:
            return
        now = time.monotonic()
        if now < self._retry_at:
            return
        try:
            if self._store_factory is not None:
                store = self._store_factory()
            else:
                from agentmesh.checkpoint.store.factory import open_store

                store = open_store(self.url)
        except (ConfigError, ImportError) as exc:
            self._broken = True  # a wrong URL or a missing extra: no retry will help
            _log.warning(
                "handoff_checkpoint_store_unusable",
                store=self.kind,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            return
        except Exception as exc:  # noqa: BLE001 - fail-open
            self._failed(now)
            self._throttle.warn("store_open_failed", store=self.kind, error=str(exc))
            return
        try:
            await asyncio.wait_for(store.__aenter__(), _OPEN_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - fail-open: a store that is down
            self._failed(now)
            self._throttle.warn(
                "store_open_failed",
                store=self.kind,
                error_type=type(exc).__name__,
                error=str(exc),
                retry_in_s=round(self._retry_at - now, 1),
            )
            return
        self._store = store

    async def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is None:
            return
        try:
            await asyncio.wait_for(store.__aexit__(None, None, None), _OPEN_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - fail-open
            self._throttle.warn("store_close_failed", store=self.kind, error=str(exc))

    def _serialise(self, item: _Item) -> tuple[Blob, Blob] | None:
        serde = self._serde
        try:
            if serde is None:
                serde = self._serde = _default_serde()
            kind, data = serde.dumps_typed(item.context)
            document = {
                "v": 1,
                "id": item.checkpoint_id,
                "ts": item.created_at,
                "kind": "handoff",
            }
            doc_kind, doc_data = serde.dumps_typed(document)
        except Exception as exc:  # noqa: BLE001 - fail-open: an unserialisable context
            self._count("serde_failed")
            self._throttle.warn(
                "serialisation_failed",
                run_id=item.run_id,
                context_type=type(item.context).__name__,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            return None
        return Blob(doc_kind, doc_data), Blob(kind, data)

    async def _write(self, item: _Item) -> None:
        blobs = self._serialise(item)
        if blobs is None:
            return
        await self._ensure_store()
        store = self._store
        if store is None or time.monotonic() < self._retry_at:
            self._count("store_failed")
            self._throttle.warn("store_unavailable", store=self.kind)
            return
        document, context = blobs
        record = CheckpointRecord(
            thread_id=item.run_id,
            namespace=HANDOFF_NAMESPACE,
            checkpoint_id=item.checkpoint_id,
            parent_id=item.parent_id,
            checkpoint=document,
            metadata=item.metadata,
            channel_versions={CONTEXT_CHANNEL: item.checkpoint_id},
            run_id=item.run_id,
        )
        try:
            await asyncio.wait_for(
                store.put(record, {(CONTEXT_CHANNEL, item.checkpoint_id): context}),
                _PUT_TIMEOUT_S,
            )
        except Exception as exc:  # noqa: BLE001 - fail-open: the store refused or is down
            self._failed(time.monotonic())
            self._count("store_failed")
            self._throttle.warn(
                "store_write_failed",
                store=self.kind,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            return
        self._backoff = _BACKOFF_MIN_S
        self._count("written")
