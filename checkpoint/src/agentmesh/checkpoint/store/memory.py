"""The in-process checkpoint store: :class:`MemoryCheckpointStore`, the contract's reference.

Everything lives in dictionaries of the process, so the store is fast, needs no service and
forgets everything when the process ends: use it for tests, notebooks and short-lived runs.
Its behaviour *is* the contract: the other backends are checked against the same suite.

Every method runs without awaiting anything while it touches the dictionaries, so each call is
atomic for the coroutines of an event loop (the compare-and-set of ``check_extends`` included);
a lock also keeps calls atomic when a synchronous saver drives the store from another thread.

Example:
    >>> import asyncio
    >>> from agentmesh.checkpoint.store.base import Blob, CheckpointRecord
    >>> async def demo() -> list[str]:
    ...     async with MemoryCheckpointStore() as store:
    ...         record = CheckpointRecord(
    ...             "t1", "", "0001", None, Blob("msgpack", b"{}"), {"step": 0}, {"a": "1"}
    ...         )
    ...         await store.put(record, {("a", "1"): Blob("msgpack", b"x")}, check_extends=True)
    ...         stored = await store.get("t1", "")
    ...         assert stored is not None
    ...         return [stored.record.checkpoint_id, *stored.values]
    >>> asyncio.run(demo())
    ['0001', 'a']
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from agentmesh.checkpoint.store._metadata_filter import metadata_matches
from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    CheckpointStore,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
    without_channels,
)
from agentmesh.core.errors import CheckpointConflictError, CheckpointError
from agentmesh.core.urls import MEMORY_STORE_URL

__all__ = ["MemoryCheckpointStore", "SyncMemoryCheckpointStore"]

_T = TypeVar("_T")


@dataclass(slots=True)
class _Entry:
    """A stored checkpoint, its metadata as JSON and when it was put (``time.time()``)."""

    record: CheckpointRecord
    written_at: float
    metadata_json: str


@dataclass(slots=True)
class _Chain:
    """Everything stored for one thread and namespace.

    Attributes:
        checkpoints: By checkpoint id.
        blobs: Channel values by ``(channel, version)``.
        writes: Pending writes by checkpoint id, then ``(task_id, idx)``.
        head: The greatest checkpoint id (None when there is none).
        last_written: When the most recently written checkpoint was put.
    """

    checkpoints: dict[str, _Entry] = dataclasses.field(default_factory=lambda: {})
    blobs: dict[tuple[str, str], Blob] = dataclasses.field(default_factory=lambda: {})
    writes: dict[str, dict[tuple[str, int], WriteRecord]] = dataclasses.field(
        default_factory=lambda: {}
    )
    head: str | None = None
    last_written: float = 0.0

    def add(self, checkpoint_id: str, entry: _Entry) -> None:
        """Store a checkpoint entry, moving the head and the write time on."""
        self.checkpoints[checkpoint_id] = entry
        if self.head is None or checkpoint_id > self.head:
            self.head = checkpoint_id
        self.last_written = max(self.last_written, entry.written_at)

    def recompute(self) -> None:
        """Recompute the head and the write time after checkpoints were removed."""
        self.head = max(self.checkpoints) if self.checkpoints else None
        self.last_written = max(
            (entry.written_at for entry in self.checkpoints.values()), default=0.0
        )


def _to_json(thread_id: str, metadata: Mapping[str, Any]) -> str:
    """Metadata as JSON text, as every other backend stores it."""
    try:
        return json.dumps(dict(metadata), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"memory checkpoint store: thread {thread_id!r}: metadata is not JSON-able: {exc}"
        ) from exc


def _json_copy(thread_id: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh copy of metadata through JSON."""
    copied: dict[str, Any] = json.loads(_to_json(thread_id, metadata))
    return copied


class MemoryCheckpointStore(CheckpointStore):
    """Checkpoints in the memory of the process; the reference semantics of the contract.

    ``size_bytes`` is the sum of the payload bytes held: checkpoint documents, channel values
    and pending writes.
    """

    name: str = "memory"

    def __init__(self) -> None:
        self._threads: dict[str, dict[str, _Chain]] = {}
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        """Where the checkpoints live: ``memory://``, this process (gone when it exits)."""
        return MEMORY_STORE_URL

    async def __aenter__(self) -> MemoryCheckpointStore:
        """Open the store (nothing to connect); returns the store."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the store; its content stays available to the same object."""

    def _chain(self, thread_id: str, namespace: str) -> _Chain:
        """The chain of a thread and namespace, created empty when missing."""
        return self._threads.setdefault(thread_id, {}).setdefault(namespace, _Chain())

    async def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """Store a checkpoint and its new channel values (see :meth:`CheckpointStore.put`).

        Raises:
            CheckpointConflictError: ``check_extends`` and the newest checkpoint is not
                ``extends``.
            CheckpointError: The metadata is not JSON-able.
        """
        metadata_json = _to_json(record.thread_id, record.metadata)
        stored = dataclasses.replace(
            record,
            metadata=json.loads(metadata_json),
            channel_versions=dict(record.channel_versions),
        )
        with self._lock:
            chain = self._threads.get(record.thread_id, {}).get(record.namespace)
            if check_extends and (chain is None or record.checkpoint_id not in chain.checkpoints):
                newest = chain.head if chain is not None else None
                if newest != extends:
                    raise CheckpointConflictError(
                        record.thread_id, record.namespace, extends, newest
                    )
            if chain is None:
                chain = self._chain(record.thread_id, record.namespace)
            chain.add(record.checkpoint_id, _Entry(stored, time.time(), metadata_json))
            for pair, blob in blobs.items():
                chain.blobs.setdefault(pair, blob)

    async def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Store pending writes (see :meth:`CheckpointStore.put_writes`)."""
        with self._lock:
            stored = self._chain(thread_id, namespace).writes.setdefault(checkpoint_id, {})
            for write in writes:
                key = (write.task_id, write.idx)
                if write.idx < 0 or key not in stored:
                    stored[key] = write

    @staticmethod
    def _stored(chain: _Chain, entry: _Entry) -> StoredCheckpoint:
        """The checkpoint as read back: fresh metadata and versions, its values and writes."""
        record = dataclasses.replace(
            entry.record,
            metadata=json.loads(entry.metadata_json),
            channel_versions=dict(entry.record.channel_versions),
        )
        values: dict[str, Blob] = {}
        for channel, version in record.channel_versions.items():
            blob = chain.blobs.get((channel, version))
            if blob is not None:
                values[channel] = blob
        writes = sorted(
            chain.writes.get(record.checkpoint_id, {}).values(),
            key=lambda write: (write.task_path, write.task_id, write.idx),
        )
        return StoredCheckpoint(record=record, values=values, writes=tuple(writes))

    async def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """The given checkpoint, or the newest of the namespace when ``checkpoint_id`` is None.

        The values of ``skip_channels`` are left out.
        """
        with self._lock:
            chain = self._threads.get(thread_id, {}).get(namespace)
            if chain is None:
                return None
            wanted = checkpoint_id if checkpoint_id is not None else chain.head
            entry = chain.checkpoints.get(wanted) if wanted is not None else None
            stored = self._stored(chain, entry) if entry is not None else None
        return without_channels(stored, skip_channels) if stored is not None else None

    def _matches(self, query: ListQuery) -> list[StoredCheckpoint]:
        """The checkpoints a query selects, newest first."""
        wanted = _json_copy(query.thread_id or "*", query.metadata) if query.metadata else {}
        found: list[tuple[str, str, str, _Chain, _Entry]] = []
        with self._lock:
            if query.thread_id is None:
                threads = self._threads
            else:
                threads = {query.thread_id: self._threads.get(query.thread_id, {})}
            for thread_id, namespaces in threads.items():
                for namespace, chain in namespaces.items():
                    if query.namespace is not None and namespace != query.namespace:
                        continue
                    for checkpoint_id, entry in chain.checkpoints.items():
                        if query.checkpoint_id is not None and checkpoint_id != query.checkpoint_id:
                            continue
                        if query.before is not None and not checkpoint_id < query.before:
                            continue
                        metadata = entry.record.metadata
                        if metadata_matches(metadata, wanted):
                            found.append((checkpoint_id, thread_id, namespace, chain, entry))
            if query.limit is not None:
                found = heapq.nlargest(query.limit, found, key=lambda item: item[:3])
            else:
                found.sort(key=lambda item: item[:3], reverse=True)
            return [self._stored(chain, entry) for *_, chain, entry in found]

    async def list(self, query: ListQuery) -> AsyncIterator[StoredCheckpoint]:
        """Checkpoints matching the query, newest first (by checkpoint id)."""
        for item in self._matches(query):
            yield item

    async def delete_thread(self, thread_id: str) -> int:
        """Delete every checkpoint, blob and write of a thread (all namespaces).

        Returns:
            The number of checkpoints deleted.
        """
        with self._lock:
            namespaces = self._threads.pop(thread_id, {})
            return sum(len(chain.checkpoints) for chain in namespaces.values())

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs, and their writes."""
        runs = set(run_ids)
        if not runs:
            return
        with self._lock:
            for namespaces in self._threads.values():
                for chain in namespaces.values():
                    doomed = [
                        checkpoint_id
                        for checkpoint_id, entry in chain.checkpoints.items()
                        if entry.record.run_id is not None and entry.record.run_id in runs
                    ]
                    for checkpoint_id in doomed:
                        del chain.checkpoints[checkpoint_id]
                        chain.writes.pop(checkpoint_id, None)
                    if doomed:
                        chain.recompute()

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another thread id."""
        with self._lock:
            for namespace, source in list(self._threads.get(source_thread_id, {}).items()):
                target = self._chain(target_thread_id, namespace)
                for checkpoint_id, entry in source.checkpoints.items():
                    record = dataclasses.replace(entry.record, thread_id=target_thread_id)
                    target.add(checkpoint_id, _Entry(record, entry.written_at, entry.metadata_json))
                for pair, blob in source.blobs.items():
                    target.blobs.setdefault(pair, blob)
                for checkpoint_id, writes in source.writes.items():
                    target_writes = target.writes.setdefault(checkpoint_id, {})
                    for write_key, write in writes.items():
                        target_writes.setdefault(write_key, write)

    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> int:
        """Keep only the newest checkpoint per namespace (or none) of these threads.

        Returns:
            The number of checkpoints deleted.
        """
        deleted = 0
        with self._lock:
            for thread_id in set(thread_ids):
                namespaces = self._threads.pop(thread_id, None)
                if namespaces is None:
                    continue
                deleted += sum(len(chain.checkpoints) for chain in namespaces.values())
                if not keep_latest:
                    continue
                kept: dict[str, _Chain] = {}
                for namespace, chain in namespaces.items():
                    if chain.head is None:
                        continue
                    deleted -= 1
                    entry = chain.checkpoints[chain.head]
                    referenced = set(entry.record.channel_versions.items())
                    pruned = _Chain(
                        blobs={
                            pair: blob for pair, blob in chain.blobs.items() if pair in referenced
                        },
                        writes={chain.head: chain.writes[chain.head]}
                        if chain.head in chain.writes
                        else {},
                    )
                    pruned.add(chain.head, entry)
                    kept[namespace] = pruned
                if kept:
                    self._threads[thread_id] = kept
        return deleted

    async def expire(self, older_than: float) -> int:
        """Delete threads whose newest checkpoint was written before ``older_than``.

        Returns:
            The number of threads deleted.
        """
        with self._lock:
            doomed = [
                thread_id
                for thread_id, namespaces in self._threads.items()
                if any(chain.checkpoints for chain in namespaces.values())
                and max(chain.last_written for chain in namespaces.values() if chain.checkpoints)
                < older_than
            ]
            for thread_id in doomed:
                del self._threads[thread_id]
            return len(doomed)

    async def size_bytes(self) -> int:
        """The payload bytes held: checkpoint documents, channel values and writes."""
        with self._lock:
            total = 0
            for namespaces in self._threads.values():
                for chain in namespaces.values():
                    total += sum(len(e.record.checkpoint.data) for e in chain.checkpoints.values())
                    total += sum(len(blob.data) for blob in chain.blobs.values())
                    total += sum(
                        len(write.value.data)
                        for writes in chain.writes.values()
                        for write in writes.values()
                    )
            return total


def _now(step: Awaitable[_T]) -> _T:
    """Run a call of the memory store to its end at once (it never awaits anything)."""
    steps = step.__await__()
    try:
        next(steps)
    except StopIteration as done:
        return cast("_T", done.value)
    steps.close()
    raise AssertionError("the memory checkpoint store awaited something")  # pragma: no cover


class SyncMemoryCheckpointStore:
    """The memory store's blocking twin: the same dictionaries, called without an event loop.

    Every method of :class:`MemoryCheckpointStore` finishes without awaiting anything, so the
    saver's sync methods can run them in the calling thread, even one whose running event loop
    is the store's own (the async store cannot be waited for from there).

    Args:
        store: The memory store to share.
    """

    name: str = "memory"

    def __init__(self, store: MemoryCheckpointStore) -> None:
        self._store = store

    def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """See :meth:`MemoryCheckpointStore.put`."""
        _now(self._store.put(record, blobs, extends=extends, check_extends=check_extends))

    def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """See :meth:`MemoryCheckpointStore.put_writes`."""
        _now(self._store.put_writes(thread_id, namespace, checkpoint_id, writes))

    def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """See :meth:`MemoryCheckpointStore.get`."""
        return _now(
            self._store.get(thread_id, namespace, checkpoint_id, skip_channels=skip_channels)
        )

    def list(self, query: ListQuery) -> Iterator[StoredCheckpoint]:
        """See :meth:`MemoryCheckpointStore.list`."""
        found = self._store.list(query)
        while True:
            try:
                yield _now(found.__anext__())
            except StopAsyncIteration:
                return

    def delete_thread(self, thread_id: str) -> None:
        """See :meth:`MemoryCheckpointStore.delete_thread`."""
        _now(self._store.delete_thread(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """See :meth:`MemoryCheckpointStore.delete_for_runs`."""
        _now(self._store.delete_for_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """See :meth:`MemoryCheckpointStore.copy_thread`."""
        _now(self._store.copy_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> None:
        """See :meth:`MemoryCheckpointStore.prune`."""
        _now(self._store.prune(thread_ids, keep_latest=keep_latest))
