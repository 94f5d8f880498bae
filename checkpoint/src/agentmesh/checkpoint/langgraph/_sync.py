"""The synchronous twin of a checkpoint store: :class:`SyncCheckpointStore`, :class:`SyncTwin`.

Backends whose client has a blocking API (Redis, DuckDB) provide a store with the same methods
as :class:`~agentmesh.checkpoint.store.base.CheckpointStore`, synchronous. A saver uses it for
its sync methods, so LangGraph's ``invoke`` works from any thread, even one whose event loop
runs the async store. :class:`SyncTwin` opens it on first use and closes it with the saver.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)

__all__ = ["SyncCheckpointStore", "SyncTwin"]


@runtime_checkable
class SyncCheckpointStore(Protocol):
    """A checkpoint store with blocking methods; the contract of ``CheckpointStore``."""

    name: str
    """The backend's name."""

    def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """Store a checkpoint and its new channel values (compare-and-set when asked)."""
        ...

    def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Store pending writes for a checkpoint, atomically."""
        ...

    def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """The given checkpoint, or the newest of the namespace (without ``skip_channels``)."""
        ...

    def list(self, query: ListQuery) -> Iterator[StoredCheckpoint]:
        """Checkpoints matching the query, newest first."""
        ...

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread."""
        ...

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs, and their writes."""
        ...

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another thread id."""
        ...

    def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> None:
        """Keep only the newest checkpoint per namespace (or none) of these threads."""
        ...


class SyncTwin:
    """A synchronous store, opened on first use (thread-safe) and closed by its owner.

    Args:
        opener: Opens the store (connects); called at most once.
        closer: Closes what ``opener`` returned.
        store: An already open store the caller owns (not closed by :meth:`close`).
    """

    def __init__(
        self,
        opener: Callable[[], SyncCheckpointStore] | None = None,
        closer: Callable[[SyncCheckpointStore], None] | None = None,
        store: SyncCheckpointStore | None = None,
    ) -> None:
        self._opener = opener
        self._closer = closer
        self._store = store
        self._owned = False
        self._closed = False
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        """Whether there is (or can be) a synchronous store."""
        return self._store is not None or (self._opener is not None and not self._closed)

    def get(self) -> SyncCheckpointStore | None:
        """The store, opening it on first use; None when the backend has no sync twin."""
        store = self._store
        if store is not None or self._opener is None:
            return store
        with self._lock:
            if self._store is None and not self._closed:
                self._store = self._opener()
                self._owned = True
            return self._store

    def close(self) -> None:
        """Close the store if this twin opened it; later :meth:`get` calls return None."""
        with self._lock:
            store, owned = self._store, self._owned
            self._closed = True
            self._store = None
            self._owned = False
        if store is not None and owned and self._closer is not None:
            self._closer(store)
