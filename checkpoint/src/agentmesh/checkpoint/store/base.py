"""The checkpoint store interface every backend implements: :class:`CheckpointStore`.

A store keeps, per thread and namespace, a chain of checkpoints. It knows nothing of LangGraph or
CrewAI: values arrive already serialised as :class:`Blob` (a type tag and bytes), metadata as a
JSON-able mapping. The LangGraph savers, the CrewAI persistence and the instrumentation's
handoff checkpoints are all written on this one interface, and one contract test suite
(``tests/checkpoint/contract``) runs against every backend.

Storage grows linearly: a checkpoint row holds the checkpoint document (without channel values)
and, per channel, the *version* of its value; each ``(channel, version)`` value is stored once per
thread and namespace, so a channel that did not change costs nothing in later checkpoints.

Puts are idempotent (a checkpoint id or a ``(channel, version)`` blob written twice is stored
once). Chains do not fork behind a writer's back: a put that says it *extends* the newest
checkpoint of its namespace is refused with :class:`~agentmesh.core.CheckpointConflictError`
when another writer got there first (compare-and-set in the backend, atomic).

Ordering: checkpoint ids are time-ordered, so *newest* means the greatest id in lexicographic
order, and listings go newest first by id, within a thread (LangGraph's own contract) and across
the threads of a store. Every AgentMesh writer (the LangGraph savers, the CrewAI task and flow
checkpoints, the handoff checkpoints) makes its ids in LangGraph's UUID version 6 layout, so the
ids of different writers of one store compare by time. Retention (:meth:`CheckpointStore.expire`)
goes by the time each checkpoint was written instead, whatever its id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_COMMAND_TIMEOUT_SECONDS",
    "Blob",
    "CheckpointRecord",
    "CheckpointStore",
    "ListQuery",
    "StoredCheckpoint",
    "WriteRecord",
    "without_channels",
]

DEFAULT_COMMAND_TIMEOUT_SECONDS: Final = 30.0
"""How long a networked store waits for its server's answer to one call, by default."""


@dataclass(frozen=True, slots=True)
class Blob:
    """A serialised value: the serializer's type tag and its bytes.

    Attributes:
        type: The type tag (``"msgpack"``, ``"json"``, ``"bytes"``, ``"empty"``…); opaque to
            the store, given back as stored.
        data: The payload.
    """

    type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """One checkpoint as the store keeps it (channel values live in blobs).

    Attributes:
        thread_id: The thread (LangGraph ``thread_id``, a run id for handoff checkpoints).
        namespace: The checkpoint namespace (``""`` for the root graph).
        checkpoint_id: Time-ordered id, unique within the thread and namespace.
        parent_id: The checkpoint this one follows, if any.
        checkpoint: The serialised checkpoint document, without its channel values.
        metadata: JSON-able metadata (LangGraph's ``source``, ``step``, ``parents``, user keys);
            listings filter on its top-level keys by equality.
        channel_versions: For each channel that has a value in this checkpoint, the version
            whose blob holds it.
        run_id: The run that wrote the checkpoint (``metadata["run_id"]`` for LangGraph), used
            by :meth:`CheckpointStore.delete_for_runs`.
    """

    thread_id: str
    namespace: str
    checkpoint_id: str
    parent_id: str | None
    checkpoint: Blob
    metadata: Mapping[str, Any]
    channel_versions: Mapping[str, str]
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One pending write of a task, linked to the checkpoint it was made from.

    Attributes:
        task_id: The task that wrote.
        task_path: The task's path (orders a super-step's writes; may be ``""``).
        idx: The write's index within the task; negative indexes are LangGraph's special
            writes (errors, interrupts…), which replace an earlier write with the same key.
        channel: The channel written.
        value: The serialised value.
    """

    task_id: str
    task_path: str
    idx: int
    channel: str
    value: Blob


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A checkpoint read back, with its channel values and pending writes.

    Attributes:
        record: The checkpoint as put (``channel_versions`` included).
        values: The blob of every channel in ``record.channel_versions`` that has one.
        writes: Pending writes linked to the checkpoint, ordered by
            ``(task_path, task_id, idx)``.
    """

    record: CheckpointRecord
    values: Mapping[str, Blob]
    writes: Sequence[WriteRecord] = field(default_factory=lambda: ())


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Which checkpoints :meth:`CheckpointStore.list` returns, newest first.

    Attributes:
        thread_id: Only this thread (``None``: every thread).
        namespace: Only this namespace (``None``: every namespace).
        checkpoint_id: Only this checkpoint.
        before: Only checkpoints with a smaller id.
        metadata: Only checkpoints whose metadata has each of these top-level keys with an
            equal (JSON-equal) value.
        limit: At most this many.
    """

    thread_id: str | None = None
    namespace: str | None = None
    checkpoint_id: str | None = None
    before: str | None = None
    metadata: Mapping[str, Any] | None = None
    limit: int | None = None


@runtime_checkable
class CheckpointStore(Protocol):
    """Async checkpoint storage, the same contract on every backend.

    Stores are async context managers: ``async with store:`` opens connections and applies
    migrations; leaving closes them. Every method raises
    :class:`~agentmesh.core.CheckpointError` (with the backend and the cause in plain words)
    when the backend fails; nothing is half-written (each call is atomic).
    """

    name: str
    """The backend's name (``"memory"``, ``"duckdb"``, ``"redis"``, ``"postgres"``)."""

    async def __aenter__(self) -> CheckpointStore: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """Store a checkpoint and the channel values that are new with it.

        Args:
            record: The checkpoint.
            blobs: New values by ``(channel, version)``; a pair already stored for the thread
                and namespace is kept as it is (values are immutable per version).
            extends: With ``check_extends``: the checkpoint the writer believes is the newest of
                the namespace (``None``: the namespace is empty).
            check_extends: Compare-and-set: refuse the put when the newest checkpoint of
                ``(record.thread_id, record.namespace)`` is not ``extends``. Re-putting a
                checkpoint id that is already stored is accepted (idempotent) either way.

        Raises:
            CheckpointConflictError: ``check_extends`` and another writer moved the chain on.
        """
        ...

    async def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Store pending writes for a checkpoint, atomically.

        A write whose ``(task_id, idx)`` is already stored for the checkpoint is kept as it is,
        unless its ``idx`` is negative (special writes replace).
        """
        ...

    async def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """The given checkpoint, or the newest of the namespace when ``checkpoint_id`` is None.

        Args:
            thread_id: The thread.
            namespace: The namespace.
            checkpoint_id: The checkpoint (``None``: the newest).
            skip_channels: Channels whose values are left out of the result: a caller that
                already holds them (content-addressed values, say) saves reading them.
        """
        ...

    def list(self, query: ListQuery) -> AsyncIterator[StoredCheckpoint]:
        """Checkpoints matching the query, newest first (by checkpoint id)."""
        ...

    async def delete_thread(self, thread_id: str) -> int:
        """Delete every checkpoint, blob and write of a thread (all namespaces).

        Returns:
            The number of checkpoints deleted (0: the thread had none).
        """
        ...

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs, and their writes."""
        ...

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another thread id."""
        ...

    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> int:
        """Keep only the newest checkpoint per namespace (or none) of these threads.

        Blobs no kept checkpoint refers to, and writes of removed checkpoints, go too.

        Returns:
            The number of checkpoints deleted.
        """
        ...

    async def expire(self, older_than: float) -> int:
        """Retention: delete threads whose newest checkpoint was written before a time.

        Args:
            older_than: Unix time in seconds.

        Returns:
            The number of threads deleted.
        """
        ...

    async def size_bytes(self) -> int:
        """Bytes the backend uses for checkpoints (tables and indexes, or keys)."""
        ...


def without_channels(stored: StoredCheckpoint, skip: Collection[str]) -> StoredCheckpoint:
    """A read checkpoint without the values of some channels (for stores that read them all).

    Args:
        stored: The checkpoint as read.
        skip: Channels whose values are dropped.

    Returns:
        ``stored`` itself when nothing is dropped, else a copy without them.
    """
    if not skip or not any(channel in stored.values for channel in skip):
        return stored
    dropped = set(skip)
    values = {ch: blob for ch, blob in stored.values.items() if ch not in dropped}
    return StoredCheckpoint(record=stored.record, values=values, writes=stored.writes)
