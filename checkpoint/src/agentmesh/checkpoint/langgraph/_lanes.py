"""A synchronous twin for an async-only store: :class:`LaneStore`.

Postgres is reached through asyncpg, which has no blocking API. Without a twin, a saver's sync
method hands each call to the store's event loop thread and waits: two thread hand-offs, about
150 µs a call on a 2-core machine, on top of the round trip (``SELECT 1``: 348 µs that way,
199 µs driven from the calling thread, 164 µs with a blocking driver).

A :class:`LaneStore` keeps a few *lanes*, each a copy of the store (one connection) on an event
loop of its own that no thread runs in between calls. A sync call takes a free lane and runs the
store's coroutine on that loop *in the calling thread* (``run_until_complete``), then gives the
lane back. Threads calling at once use different lanes, up to ``lanes``; more wait for one. A
thread whose own event loop is running (a sync method called from async code) cannot drive
another loop, so its call runs in a helper thread instead. Listings drive the store's async
iterator on the lane it started on, :data:`~agentmesh.checkpoint._loop.CHUNK` items a drive
(one drive an item cost a 200-checkpoint list about 30 µs a checkpoint), releasing the lane in
between, so the consumer may use the store while iterating.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from typing import TypeVar

from agentmesh.checkpoint._loop import CHUNK, next_chunk
from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    CheckpointStore,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)
from agentmesh.core.errors import CheckpointError

__all__ = ["DEFAULT_LANES", "LaneStore"]

DEFAULT_LANES = 4
"""Lanes (connections) a twin opens at most."""

T = TypeVar("T")


@dataclass
class _Lane:
    loop: asyncio.AbstractEventLoop
    store: CheckpointStore
    lock: threading.Lock = field(default_factory=threading.Lock)


def _loop_running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class LaneStore:
    """Blocking methods on copies of an async store, each on a private event loop.

    Args:
        make_store: Creates an unopened async store (one per lane; opened on first use).
        name: The backend's name.
        lanes: Most lanes opened (concurrent sync calls beyond this wait).
    """

    def __init__(
        self, make_store: Callable[[], CheckpointStore], name: str, lanes: int = DEFAULT_LANES
    ) -> None:
        self.name = name
        self._make = make_store
        self._max = max(1, lanes)
        self._lanes: list[_Lane] = []
        self._lock = threading.Lock()
        self._next = 0
        self._closed = False
        self._helper: concurrent.futures.ThreadPoolExecutor | None = None
        self._helper_lock = threading.Lock()

    # -- lanes ---------------------------------------------------------------------------------

    def _open_lane(self) -> _Lane:
        loop = asyncio.new_event_loop()
        lane = _Lane(loop, self._make())
        try:
            self._drive(lane, lane.store.__aenter__)
        except BaseException:
            loop.close()
            raise
        return lane

    def _take(self) -> _Lane:
        """A lane, locked for the caller: a free one, a new one, or the next one to free up."""
        with self._lock:
            if self._closed:
                raise CheckpointError(f"the {self.name} checkpoint store's sync twin is closed")
            for lane in self._lanes:
                if lane.lock.acquire(blocking=False):
                    return lane
            if len(self._lanes) < self._max:
                lane = self._open_lane()
                lane.lock.acquire()
                self._lanes.append(lane)
                return lane
            lane = self._lanes[self._next % len(self._lanes)]
            self._next += 1
        lane.lock.acquire()
        return lane

    def _drive(self, lane: _Lane, call: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine to its end on the lane's loop (the lane is held by the caller)."""

        async def run() -> T:
            return await call()

        if not _loop_running_here():
            return lane.loop.run_until_complete(run())
        with self._helper_lock:
            if self._helper is None:
                self._helper = concurrent.futures.ThreadPoolExecutor(
                    self._max, thread_name_prefix=f"agentmesh-{self.name}-sync"
                )
            helper = self._helper
        return helper.submit(lane.loop.run_until_complete, run()).result()

    def _run(self, call: Callable[[CheckpointStore], Awaitable[T]]) -> T:
        lane = self._take()
        try:
            return self._drive(lane, lambda: call(lane.store))
        finally:
            lane.lock.release()

    # -- the store -----------------------------------------------------------------------------

    def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """Store a checkpoint and its new channel values (compare-and-set when asked)."""
        self._run(
            lambda store: store.put(record, blobs, extends=extends, check_extends=check_extends)
        )

    def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Store pending writes for a checkpoint, atomically."""
        self._run(lambda store: store.put_writes(thread_id, namespace, checkpoint_id, writes))

    def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """The given checkpoint, or the newest of the namespace (without ``skip_channels``)."""
        return self._run(
            lambda store: store.get(
                thread_id, namespace, checkpoint_id, skip_channels=skip_channels
            )
        )

    def list(self, query: ListQuery) -> Iterator[StoredCheckpoint]:
        """Checkpoints matching the query, newest first (the lane is free between chunks)."""
        lane = self._take()
        iterator: AsyncIterator[StoredCheckpoint] | None = None
        try:
            iterator = lane.store.list(query).__aiter__()
        finally:
            lane.lock.release()
        done = False
        try:
            while not done:
                lane.lock.acquire()
                try:
                    items, done = self._drive(lane, lambda: next_chunk(iterator, CHUNK))
                finally:
                    lane.lock.release()
                yield from items
        finally:
            if not done:
                self._close_iterator(lane, iterator)

    def _close_iterator(self, lane: _Lane, iterator: AsyncIterator[StoredCheckpoint]) -> None:
        aclose = getattr(iterator, "aclose", None)
        if aclose is None or lane.loop.is_closed():
            return
        with lane.lock:
            self._drive(lane, aclose)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread."""
        self._run(lambda store: store.delete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs, and their writes."""
        self._run(lambda store: store.delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another thread id."""
        self._run(lambda store: store.copy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> None:
        """Keep only the newest checkpoint per namespace (or none) of these threads."""
        self._run(lambda store: store.prune(thread_ids, keep_latest=keep_latest))

    def close(self) -> None:
        """Close every lane's store and loop (waiting for calls under way)."""
        with self._lock:
            self._closed = True
            lanes, self._lanes = self._lanes, []
        for lane in lanes:
            with lane.lock:
                try:
                    self._drive(lane, functools.partial(lane.store.__aexit__, None, None, None))
                finally:
                    lane.loop.close()
        with self._helper_lock:
            helper, self._helper = self._helper, None
        if helper is not None:
            helper.shutdown(wait=True)
