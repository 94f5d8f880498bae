"""The LangGraph checkpoint saver on an AgentMesh checkpoint store: :class:`AgentMeshSaver`.

One saver class serves every backend: it maps LangGraph's checkpoints, metadata and pending
writes onto a :class:`~agentmesh.checkpoint.store.base.CheckpointStore` (see :mod:`._codec`),
and reaches the store from sync and async callers alike (see :mod:`._bridge`):

* async methods (``aget_tuple``, ``aput``…) await the store on the loop it was opened in, and
  hop to that loop when called from another one;
* sync methods (``get_tuple``, ``put``…) use the backend's synchronous twin store when it has
  one (Redis, DuckDB), and otherwise wait, from their thread, for the store's loop to run the
  call; called from inside that loop they raise :class:`~agentmesh.core.CheckpointError`
  instead of blocking it.

Chains do not fork behind a writer's back (fencing): the saver remembers, per thread and
namespace, the checkpoints it read as the newest and the ones it put; a put extending one of
them is a compare-and-set in the store, so of two runs that read the same head only the first
can extend it, and the other fails with :class:`~agentmesh.core.CheckpointConflictError`. A
checkpoint addressed by its id (time travel) may be forked on purpose.

Use the backend classes (:class:`~agentmesh.checkpoint.langgraph.MemorySaver`,
``DuckDBSaver``, ``RedisSaver``, ``PostgresSaver``) and their ``from_conn_string``, which open
and close the store; build an ``AgentMeshSaver`` directly for a store you manage yourself.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import TYPE_CHECKING, Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

if TYPE_CHECKING:  # langgraph-checkpoint 4.1 (delta channels); earlier releases lack it
    from langgraph.checkpoint.base import DeltaChannelHistory

from agentmesh.checkpoint._loop import (
    call_async,
    call_sync,
    iterate_async,
    iterate_sync,
    running_loop,
)
from agentmesh.checkpoint.langgraph._chunk_cache import DEFAULT_CHUNK_CACHE_BYTES, ChunkCache
from agentmesh.checkpoint.langgraph._chunks import (
    LIST_MIN_BYTES,
    chunk_channel,
    chunk_id_of,
)
from agentmesh.checkpoint.langgraph._codec import (
    Address,
    Encoding,
    PutPlan,
    address,
    decode,
    decode_with_refs,
    encode_put,
    encode_writes,
    list_query,
)
from agentmesh.checkpoint.langgraph._compress import DEFAULT_THRESHOLD
from agentmesh.checkpoint.langgraph._fence import DEFAULT_CAPACITY, Fence
from agentmesh.checkpoint.langgraph._refs import RecentRefs
from agentmesh.checkpoint.langgraph._sync import SyncCheckpointStore, SyncTwin
from agentmesh.checkpoint.langgraph._versions import next_version
from agentmesh.checkpoint.langgraph.strict_serde import StrictJsonPlusSerializer
from agentmesh.checkpoint.store.base import CheckpointStore, StoredCheckpoint
from agentmesh.core.errors import CheckpointConflictError, CheckpointError, ConfigError
from agentmesh.core.log import get_logger

__all__ = ["AgentMeshSaver"]

_log = get_logger(__name__)

T = TypeVar("T")

_UNTRACKED: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "agentmesh_saver_untracked", default=False
)
"""Set while the saver reads for itself (delta history walks): reads do not touch the fence."""

_PRUNE_STRATEGIES = {"keep_latest": True, "delete": False}


class _Shared:
    """What a saver and its shallow clones (``with_allowlist``) share."""

    def __init__(
        self,
        store: CheckpointStore,
        loop: asyncio.AbstractEventLoop | None,
        twin: SyncTwin,
        fence: Fence,
        chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES,
    ) -> None:
        self.store = store
        self.loop = loop
        self.twin = twin
        self.fence = fence
        # The checkpoints this saver was refused (a bounded set, like the fence): their pending
        # writes are refused too, instead of landing under an id the store never held.
        self.refused = Fence(fence.capacity)
        self.refs = RecentRefs()
        self.chunks = ChunkCache(chunk_cache_bytes)
        self.lock = threading.Lock()

    def require_loop(self, what: str) -> asyncio.AbstractEventLoop:
        """The store's loop, for a sync call without a sync twin."""
        loop = self.loop
        if loop is None:
            raise CheckpointError(
                f"{what}: the {self.store.name} checkpoint store has no event loop to run on; "
                "open the saver with `with <Saver>.from_conn_string(...)` for sync use, or "
                "use its async methods inside the loop that opened the store"
            )
        return loop

    def bind_loop(self) -> asyncio.AbstractEventLoop:
        """The store's loop; the running loop becomes it if none was given."""
        loop = self.loop
        if loop is None:
            with self.lock:
                if self.loop is None:
                    self.loop = asyncio.get_running_loop()
                loop = self.loop
        return loop


class AgentMeshSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer on an AgentMesh :class:`CheckpointStore`.

    Args:
        store: An open store (entered with ``async with``).
        serde: The serializer; by default a :class:`StrictJsonPlusSerializer` (LangGraph's
            format, no pickle fallback, and on load only allowed classes are rebuilt: a stored
            payload never names a callable that runs). Stored pickles are never loaded.
        loop: The event loop the store was opened in; the running loop by default, or the
            loop of the first async call.
        sync_store: The backend's synchronous twin store (open, or a :class:`SyncTwin` that
            opens it on first use), used by the sync methods.
        compress_threshold: zstd-compress payloads longer than this many bytes (``None``:
            never).
        chunk_threshold: Store a list channel whose elements serialise to at least this many
            bytes as content-addressed chunks, so a growing message history is stored about
            once instead of once per step (``None``: store every value whole).
        fence_capacity: How many ``(thread, namespace, checkpoint)`` entries the fence keeps.
        chunk_cache_bytes: Bytes of recently written or read chunks kept, so reading a thread
            again fetches only the chunks this process has not seen (0: none kept).

    Example:
        >>> import asyncio
        >>> from agentmesh.checkpoint.store.memory import MemoryCheckpointStore
        >>> async def demo() -> str | None:
        ...     async with MemoryCheckpointStore() as store:
        ...         saver = AgentMeshSaver(store)
        ...         config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
        ...         return await saver.aget_tuple(config)
        >>> asyncio.run(demo()) is None
        True
    """

    def __init__(
        self,
        store: CheckpointStore,
        *,
        serde: SerializerProtocol | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        sync_store: SyncCheckpointStore | SyncTwin | None = None,
        compress_threshold: int | None = DEFAULT_THRESHOLD,
        chunk_threshold: int | None = LIST_MIN_BYTES,
        fence_capacity: int = DEFAULT_CAPACITY,
        chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES,
    ) -> None:
        super().__init__(serde=serde or StrictJsonPlusSerializer())
        twin = sync_store if isinstance(sync_store, SyncTwin) else SyncTwin(store=sync_store)
        self._shared = _Shared(
            store, loop or running_loop(), twin, Fence(fence_capacity), chunk_cache_bytes
        )
        self.compress_threshold = compress_threshold
        self.chunk_threshold = chunk_threshold

    @property
    def store(self) -> CheckpointStore:
        """The checkpoint store the saver writes to."""
        return self._shared.store

    @property
    def store_url(self) -> str | None:
        """Where the saver's checkpoints live: the store's URL, password masked.

        What the instrumentation records beside the checkpoint ids it reads from this saver
        (``agentmesh.handoff.checkpoint.store_url``): ``memory://`` for the in-process store,
        ``duckdb:///absolute/path.duckdb``, ``redis://…``, ``postgresql://…``; ``None`` for a
        store of your own that names no ``location``.
        """
        location: object = getattr(self._shared.store, "location", None)
        return location if isinstance(location, str) and location else None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the store runs in (None until known)."""
        return self._shared.loop

    def close_sync_store(self) -> None:
        """Close the synchronous twin store if the saver opened it (its context does this)."""
        self._shared.twin.close()

    # -- dispatch ------------------------------------------------------------------------------

    def _sync(
        self,
        what: str,
        with_twin: Callable[[SyncCheckpointStore], T],
        with_store: Callable[[CheckpointStore], Awaitable[T]],
    ) -> T:
        shared = self._shared
        twin = shared.twin.get()
        if twin is not None:
            return with_twin(twin)
        return call_sync(shared.require_loop(what), lambda: with_store(shared.store), what)

    async def _async(self, what: str, with_store: Callable[[CheckpointStore], Awaitable[T]]) -> T:
        shared = self._shared
        return await call_async(shared.bind_loop(), lambda: with_store(shared.store), what)

    # -- fencing -------------------------------------------------------------------------------

    def _plan(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[PutPlan, bool]:
        shared = self._shared
        where = address(config, "put")
        parent = shared.refs.get(where.thread_id, where.namespace, where.checkpoint_id)
        encoding = Encoding(self.compress_threshold, self.chunk_threshold)
        plan = encode_put(self.serde, encoding, config, checkpoint, metadata, new_versions, parent)
        record = plan.record
        fenced = shared.fence.fenced(record.thread_id, record.namespace, record.parent_id)
        return plan, fenced

    def _put_done(self, plan: PutPlan) -> RunnableConfig:
        record = plan.record
        shared = self._shared
        shared.fence.remember(record.thread_id, record.namespace, record.checkpoint_id)
        shared.refs.remember(record.thread_id, record.namespace, record.checkpoint_id, plan.refs)
        chunks = shared.chunks
        for chunk_id, blob in plan.chunks.items():
            chunks.put(chunk_id, blob)
        return plan.config

    def _put_refused(self, plan: PutPlan, exc: CheckpointConflictError) -> None:
        # The refused checkpoint is fenced too: LangGraph (before 1.2.x, with async durability)
        # goes on putting the losing run's next checkpoints, children of this one; unfenced,
        # they would land with a parent the store never held and become the thread's newest.
        record = plan.record
        self._shared.fence.remember(record.thread_id, record.namespace, record.checkpoint_id)
        self._shared.refused.remember(record.thread_id, record.namespace, record.checkpoint_id)
        _log.warning(
            "checkpoint_put_refused",
            backend=self._shared.store.name,
            thread_id=exc.thread_id,
            namespace=exc.namespace,
            checkpoint_id=plan.record.checkpoint_id,
            expected=exc.expected,
            actual=exc.actual,
        )

    def _refuse_writes_of_refused(self, where: Address, checkpoint_id: str) -> None:
        """Raise when the writes are for a checkpoint this saver was refused.

        The losing run of a race goes on (LangGraph runs its tasks before the put of their
        checkpoint is known to have failed); its writes would sit in the store under a
        checkpoint id that does not exist, never read and never pruned.
        """
        thread_id, namespace = where.thread_id, where.namespace
        if not self._shared.refused.fenced(thread_id, namespace, checkpoint_id):
            return
        raise CheckpointConflictError(
            thread_id,
            namespace,
            checkpoint_id,
            None,
            message=(
                f"thread {thread_id!r} (namespace {namespace!r}): checkpoint {checkpoint_id!r} "
                "was refused (another writer moved the chain on), so its pending writes are "
                "refused too"
            ),
        )

    def _skippable(self, where: Address) -> list[str]:
        """Chunk channels a read need not fetch.

        They are the chunks of the checkpoint asked for (or the thread's latest known one) that
        the chunk cache holds.
        """
        shared = self._shared
        refs = shared.refs.get(where.thread_id, where.namespace, where.checkpoint_id)
        if refs is None:
            refs = shared.refs.latest(where.thread_id, where.namespace)
        if not refs:
            return []
        ids = tuple(chunk for ref in refs.values() for chunk in ref.chunks)
        return [chunk_channel(chunk) for chunk in shared.chunks.held(ids)] if ids else []

    def _filled(self, stored: StoredCheckpoint, skipped: Sequence[str]) -> StoredCheckpoint | None:
        """The read checkpoint with the skipped chunks it refers to taken from the cache.

        ``None`` when one of them left the cache meanwhile: the caller reads again in full.
        """
        wanted = stored.record.channel_versions
        values = dict(stored.values)
        chunks = self._shared.chunks
        for channel in skipped:
            if channel in wanted and channel not in values:
                blob = chunks.get(chunk_id_of(channel))
                if blob is None:
                    return None
                values[channel] = blob
        return StoredCheckpoint(record=stored.record, values=values, writes=stored.writes)

    def _found(self, where: Address, stored: StoredCheckpoint | None) -> CheckpointTuple | None:
        if not _UNTRACKED.get():
            fence = self._shared.fence
            if where.checkpoint_id is None:
                head = stored.record.checkpoint_id if stored is not None else None
                fence.remember(where.thread_id, where.namespace, head)
            elif stored is not None:
                fence.release(where.thread_id, where.namespace, where.checkpoint_id)
        if stored is None:
            return None
        found, refs = decode_with_refs(self.serde, self._shared.chunks.unpacked(stored))
        record = stored.record
        self._shared.refs.remember(record.thread_id, record.namespace, record.checkpoint_id, refs)
        return found

    # -- sync API ------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names (the newest of its thread without a checkpoint id).

        Raises:
            CheckpointError: The store failed, or this was called inside the store's loop.
        """
        where = address(config, "get_tuple")

        def read(skip: Sequence[str]) -> StoredCheckpoint | None:
            return self._sync(
                "AgentMeshSaver.get_tuple",
                lambda twin: twin.get(
                    where.thread_id, where.namespace, where.checkpoint_id, skip_channels=skip
                ),
                lambda store: store.get(
                    where.thread_id, where.namespace, where.checkpoint_id, skip_channels=skip
                ),
            )

        skip = self._skippable(where)
        stored = read(skip)
        if skip and stored is not None:
            filled = self._filled(stored, skip)
            stored = filled if filled is not None else read(())
        return self._found(where, stored)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints matching the criteria, newest first.

        Args:
            config: Thread (and namespace, checkpoint id) to list; None lists every thread.
            filter: Metadata keys each listed checkpoint has with equal values.
            before: Only checkpoints older than this one.
            limit: At most this many.
        """
        query = list_query(config, filter, before, limit)
        shared = self._shared
        twin = shared.twin.get()
        if twin is not None:
            stored_items: Iterator[StoredCheckpoint] = iter(twin.list(query))
        else:
            store = shared.store
            stored_items = iterate_sync(
                shared.require_loop("AgentMeshSaver.list"),
                lambda: store.list(query),
                "AgentMeshSaver.list",
            )
        chunks = shared.chunks
        for stored in stored_items:
            yield decode(self.serde, chunks.unpacked(stored))

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint with the values of the channels in ``new_versions``.

        Returns:
            The config of the stored checkpoint.

        Raises:
            CheckpointConflictError: The checkpoint extends one this saver saw as the newest,
                and another writer extended it first (the chain is not forked).
            CheckpointSerdeError: A value cannot be serialised.
            CheckpointError: The store failed.
        """
        plan, fenced = self._plan(config, checkpoint, metadata, new_versions)
        record = plan.record
        try:
            self._sync(
                "AgentMeshSaver.put",
                lambda twin: twin.put(
                    record, plan.blobs, extends=record.parent_id, check_extends=fenced
                ),
                lambda store: store.put(
                    record, plan.blobs, extends=record.parent_id, check_extends=fenced
                ),
            )
        except CheckpointConflictError as exc:
            self._put_refused(plan, exc)
            raise
        return self._put_done(plan)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for the checkpoint ``config`` names.

        Raises:
            CheckpointConflictError: That checkpoint's put was refused (another writer moved
                the thread on): its writes are refused too.
            CheckpointError: The store failed.
        """
        where = address(config, "put_writes")
        checkpoint_id = _require_id(where.checkpoint_id, "put_writes")
        self._refuse_writes_of_refused(where, checkpoint_id)
        records = encode_writes(self.serde, self.compress_threshold, writes, task_id, task_path)
        self._sync(
            "AgentMeshSaver.put_writes",
            lambda twin: twin.put_writes(where.thread_id, where.namespace, checkpoint_id, records),
            lambda store: store.put_writes(
                where.thread_id, where.namespace, checkpoint_id, records
            ),
        )

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread."""
        self._shared.refs.forget_thread(str(thread_id))
        self._sync(
            "AgentMeshSaver.delete_thread",
            lambda twin: twin.delete_thread(str(thread_id)),
            lambda store: store.delete_thread(str(thread_id)),
        )

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) these runs wrote."""
        runs = [str(run_id) for run_id in run_ids]
        if runs:
            self._shared.refs.clear()
            self._sync(
                "AgentMeshSaver.delete_for_runs",
                lambda twin: twin.delete_for_runs(runs),
                lambda store: store.delete_for_runs(runs),
            )

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another thread id."""
        self._sync(
            "AgentMeshSaver.copy_thread",
            lambda twin: twin.copy_thread(str(source_thread_id), str(target_thread_id)),
            lambda store: store.copy_thread(str(source_thread_id), str(target_thread_id)),
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the newest checkpoint per namespace (``keep_latest``) or none (``delete``).

        Raises:
            ConfigError: An unknown strategy.
        """
        keep_latest = _strategy(strategy)
        threads = [str(thread_id) for thread_id in thread_ids]
        for thread in threads:
            self._shared.refs.forget_thread(thread)
        if threads:
            self._sync(
                "AgentMeshSaver.prune",
                lambda twin: twin.prune(threads, keep_latest=keep_latest),
                lambda store: store.prune(threads, keep_latest=keep_latest),
            )

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """LangGraph's ancestor walk for delta channels; its reads leave the fence alone."""
        token = _UNTRACKED.set(True)
        try:
            return super().get_delta_channel_history(config=config, channels=channels)
        finally:
            _UNTRACKED.reset(token)

    # -- async API -----------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple`."""
        where = address(config, "aget_tuple")

        async def read(skip: Sequence[str]) -> StoredCheckpoint | None:
            return await self._async(
                "AgentMeshSaver.aget_tuple",
                lambda store: store.get(
                    where.thread_id, where.namespace, where.checkpoint_id, skip_channels=skip
                ),
            )

        skip = self._skippable(where)
        stored = await read(skip)
        if skip and stored is not None:
            filled = self._filled(stored, skip)
            stored = filled if filled is not None else await read(())
        return self._found(where, stored)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`."""
        query = list_query(config, filter, before, limit)
        shared = self._shared
        store = shared.store
        chunks = shared.chunks
        async for stored in iterate_async(
            shared.bind_loop(), lambda: store.list(query), "AgentMeshSaver.alist"
        ):
            yield decode(self.serde, chunks.unpacked(stored))

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put` (same fencing)."""
        plan, fenced = self._plan(config, checkpoint, metadata, new_versions)
        record = plan.record
        try:
            await self._async(
                "AgentMeshSaver.aput",
                lambda store: store.put(
                    record, plan.blobs, extends=record.parent_id, check_extends=fenced
                ),
            )
        except CheckpointConflictError as exc:
            self._put_refused(plan, exc)
            raise
        return self._put_done(plan)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`."""
        where = address(config, "aput_writes")
        checkpoint_id = _require_id(where.checkpoint_id, "aput_writes")
        self._refuse_writes_of_refused(where, checkpoint_id)
        records = encode_writes(self.serde, self.compress_threshold, writes, task_id, task_path)
        await self._async(
            "AgentMeshSaver.aput_writes",
            lambda store: store.put_writes(
                where.thread_id, where.namespace, checkpoint_id, records
            ),
        )

    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`."""
        self._shared.refs.forget_thread(str(thread_id))
        await self._async(
            "AgentMeshSaver.adelete_thread", lambda store: store.delete_thread(str(thread_id))
        )

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async :meth:`delete_for_runs`."""
        runs = [str(run_id) for run_id in run_ids]
        if runs:
            self._shared.refs.clear()
            await self._async(
                "AgentMeshSaver.adelete_for_runs", lambda store: store.delete_for_runs(runs)
            )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async :meth:`copy_thread`."""
        await self._async(
            "AgentMeshSaver.acopy_thread",
            lambda store: store.copy_thread(str(source_thread_id), str(target_thread_id)),
        )

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async :meth:`prune`."""
        keep_latest = _strategy(strategy)
        threads = [str(thread_id) for thread_id in thread_ids]
        for thread in threads:
            self._shared.refs.forget_thread(thread)
        if threads:
            await self._async(
                "AgentMeshSaver.aprune",
                lambda store: store.prune(threads, keep_latest=keep_latest),
            )

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Async :meth:`get_delta_channel_history`."""
        token = _UNTRACKED.set(True)
        try:
            return await super().aget_delta_channel_history(config=config, channels=channels)
        finally:
            _UNTRACKED.reset(token)

    # -- versions ------------------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """The channel version after ``current``: ``"{n:032}.{random:016}"``."""
        return next_version(current)


def _require_id(checkpoint_id: str | None, what: str) -> str:
    if checkpoint_id is None:
        raise CheckpointError(
            f"{what}: the config names no checkpoint_id; pending writes belong to a checkpoint"
        )
    return checkpoint_id


def _strategy(strategy: str) -> bool:
    try:
        return _PRUNE_STRATEGIES[strategy]
    except KeyError:
        raise ConfigError(
            f"unknown prune strategy {strategy!r}; use 'keep_latest' or 'delete'"
        ) from None
