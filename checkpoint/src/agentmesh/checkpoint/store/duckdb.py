"""The DuckDB checkpoint store: :class:`DuckDBCheckpointStore` and its sync twin.

One DuckDB file holds the checkpoints (schema and migrations in
:mod:`~agentmesh.checkpoint.store._duckdb_schema`). :class:`DuckDBCheckpointStore` is the async
:class:`~agentmesh.checkpoint.store.base.CheckpointStore`; :class:`SyncDuckDBCheckpointStore`
has the same methods, synchronous, for the sync methods of the LangGraph saver. Both drive one
shared core (one per file and process, created by the first store opened on the file, whose
``cache_bytes`` it keeps; ``":memory:"`` is one database per process), so a sync and an async
store on the same file, even open at the same time, see one state.

Why a cache, and why writes are queued
    DuckDB is an analytical engine: every statement costs 0.1-1 ms (planning, a commit writes
    and syncs the WAL: a put committed before returning takes about 2 ms), and a lookup on a
    compound key scans the table, where SQLite answers a point query in a few microseconds.
    So the core keeps what it needs to answer the common calls from memory and talks to
    DuckDB in one dedicated worker thread, plus a reader thread with a connection of its own
    (neither connection is ever shared between threads):

    * **Mirrors**: per thread id, the checkpoint rows (document, metadata, channel versions),
      the keys of its pending writes and of its blobs, and the newest id per namespace, loaded
      from the file with one query set the first time the thread is read or compare-and-set.
      Mirrors are evicted least recently used beyond ``cache_bytes``.
    * **Values**: channel values and write values, cached least recently used up to
      ``cache_bytes``; misses are fetched from the file by key (an index lookup).
    * **Write-behind**: ``put`` and ``put_writes`` update the cache and queue their rows;
      the worker writes everything queued in one transaction (plain multi-row inserts, rows
      already stored left out), so a busy writer gets group commit. With ``durable=True``
      each call also waits for its transaction to commit. Maintenance calls (deletes, copy,
      prune, expire, size) are queued behind the pending writes, so every call sees the effect
      of every call made before it.
    * **A reader**: a read that needs the file (a thread not in memory, values not cached)
      goes to a second connection in a reader thread when nothing queued touches that thread
      (its rows are all committed), so it does not wait for the write queue's commit; when
      something does, it is queued behind the writes like the rest. A new thread's first read
      took about 5 ms (mostly waiting for the previous commit), now about 1.3-2.6 ms (the file
      lookup itself).

Why this is atomic and coherent
    DuckDB lets one process at a time open a file for writing (a second one gets
    :class:`~agentmesh.core.CheckpointError` saying another process holds it), and within the
    process every store on the file shares one core. So nothing writes the file behind the
    core's back: its in-memory view is the file's state plus its queue, and the
    compare-and-set of ``check_extends``, done under the core's lock on that view, is atomic.

Durability and failures
    With write-behind (the default, like LangGraph's ``durability="async"``) a process crash
    loses the puts of the last few milliseconds that were not yet committed; closing the store
    (or :meth:`DuckDBCheckpointStore.flush`) commits them.

    A write the disk refuses (no space, a file size limit, a quota, a read-only file system) is
    held in memory, in order with the writes queued after it, and written as soon as the disk
    takes it: each later call that needs the file tries again first, and raises
    :class:`~agentmesh.core.CheckpointUnavailableError` while the disk still refuses. Puts go on
    being accepted (write-behind) until the queue budget (64 MB) is used, then they raise the
    same error; reads of threads with nothing held still answer. When DuckDB gives up on the
    database (a checkpoint that hit a full disk invalidates it), the file is opened again on the
    next try, which replays its write-ahead log; held rows are then checked against the file
    before they are written, so none is stored twice. Closing the store with writes still held
    raises :class:`~agentmesh.core.CheckpointError` saying how many checkpoints were lost. Any
    other failed background write is raised by the next call, and the store then refuses
    further calls (its cache may be ahead of the file): reopen it.

``size_bytes`` runs ``CHECKPOINT`` (folding the WAL into the file) and returns the bytes of the
file's used blocks (``used_blocks * block_size`` of ``pragma_database_size``: data, indexes and
DuckDB's metadata, in whole 256 KiB blocks; free blocks left by deletes or rewrites excluded,
as DuckDB reuses them) plus the WAL if any; an in-memory database (``":memory:"``) reports the
sum of its payload column sizes instead.

Example:
    >>> import tempfile
    >>> from agentmesh.checkpoint.store.base import Blob, CheckpointRecord
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     with SyncDuckDBCheckpointStore(f"{folder}/ckpt.duckdb") as store:
    ...         record = CheckpointRecord(
    ...             "t1", "", "0001", None, Blob("msgpack", b"{}"), {"step": 0}, {"a": "1"}
    ...         )
    ...         store.put(record, {("a", "1"): Blob("msgpack", b"x")}, check_extends=True)
    ...         stored = store.get("t1", "")
    ...         assert stored is not None
    ...         print(stored.record.checkpoint_id, dict(stored.values))
    0001 {'a': Blob(type='msgpack', data=b'x')}
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import duckdb

from agentmesh.checkpoint.store._duckdb_schema import (
    CREATE_MIGRATIONS_TABLE,
    MIGRATIONS,
    MIGRATIONS_TABLE,
    SCHEMA_VERSION,
)
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
from agentmesh.core.disk_errors import disk_refused
from agentmesh.core.errors import (
    CheckpointConflictError,
    CheckpointError,
    CheckpointUnavailableError,
)
from agentmesh.core.log import get_logger
from agentmesh.core.urls import checkpoint_store_url

__all__ = ["CACHE_BYTES", "DuckDBCheckpointStore", "SyncDuckDBCheckpointStore"]

_log = get_logger(__name__)

CACHE_BYTES: Final = 64 * 1024 * 1024
"""Default budget of each of the two caches (thread mirrors, values), in bytes."""

_LINGER: Final = 0.002
"""Seconds a write batch waits for more rows before it is written (group commit), unless a
caller is waiting for the file."""

_MAX_FACTS: Final = 100_000
"""Entries the core keeps in each of its per-thread bookkeeping maps (change counters, the
newest ids of unmirrored threads, threads too big to mirror) before it drops them all: each
is a shortcut whose absence only costs a read of the file, and a process that sees millions
of threads must not keep one entry per thread forever."""

_MAX_QUEUED_BYTES: Final = 64 * 1024 * 1024
"""Payload bytes queued for writing beyond which ``put`` waits for the worker."""

_CONFIG: Final = {"threads": 1, "checkpoint_threshold": "16MB"}
"""DuckDB settings of the connection (the threshold is DuckDB's default: when the write-ahead
log is folded into the file)."""

_T = TypeVar("_T")
_Con = duckdb.DuckDBPyConnection
_Row = tuple[Any, ...]
_Steps = Generator["Future[Any]", Any, _T]
"""A core operation: yields futures of the worker, receives their results, returns a value."""

_VKey = tuple[str, str, str, str, str, int]
"""Value cache key: ``("b", thread, ns, channel, version, 0)`` or
``("w", thread, ns, checkpoint_id, task_id, idx)``."""

_CKPT_COLUMNS: Final = (
    "thread_id, namespace, checkpoint_id, parent_id, type, data, metadata, channels, versions, "
    "run_id"
)
_CKPT_INSERT_COLUMNS: Final = _CKPT_COLUMNS + ", created_at"
_BLOB_COLUMNS: Final = "key, thread_id, namespace, channel, version, type, data"
_WRITE_COLUMNS: Final = (
    "key, thread_id, namespace, checkpoint_id, task_id, idx, task_path, channel, type, data"
)
_INSERT_CHUNK: Final = 256
"""Rows per multi-row ``INSERT … VALUES`` statement."""
_UNNEST_MAX_BYTES_PER_ROW: Final = 8 * 1024
"""Average value size up to which a batch is inserted as columns (``unnest``)."""
_DATA_COLUMN: Final = {"ckpt_checkpoints": 5, "ckpt_blobs": 6, "ckpt_writes": 9}
"""Position of the ``data`` column in each table's rows."""


def _unnest_insert(table: str, columns: str, types: Sequence[str]) -> str:
    values = ", ".join(f"unnest(?::{type_}[])" for type_ in types)
    return f"INSERT INTO {table} ({columns}) SELECT {values}"


_UNNEST_INSERT: Final = {
    "ckpt_checkpoints": _unnest_insert(
        "ckpt_checkpoints",
        _CKPT_INSERT_COLUMNS,
        ["VARCHAR"] * 5 + ["BLOB", "VARCHAR", "VARCHAR[]", "VARCHAR[]", "VARCHAR", "DOUBLE"],
    ),
    "ckpt_blobs": _unnest_insert("ckpt_blobs", _BLOB_COLUMNS, ["VARCHAR"] * 6 + ["BLOB"]),
    "ckpt_writes": _unnest_insert(
        "ckpt_writes", _WRITE_COLUMNS, ["VARCHAR"] * 5 + ["INTEGER"] + ["VARCHAR"] * 3 + ["BLOB"]
    ),
}
_EXISTING_CHECKPOINTS: Final = """
    SELECT c.thread_id, c.namespace, c.checkpoint_id
    FROM ckpt_checkpoints c JOIN (
        SELECT unnest(?::VARCHAR[]) AS t, unnest(?::VARCHAR[]) AS ns, unnest(?::VARCHAR[]) AS id
    ) k ON c.thread_id = k.t AND c.namespace = k.ns AND c.checkpoint_id = k.id
"""
_EXISTING_KEYS: Final = "SELECT key FROM {table} WHERE key IN (SELECT unnest(?::VARCHAR[]))"
_DELETE_KEYS: Final = "DELETE FROM ckpt_writes WHERE key IN (SELECT unnest(?::VARCHAR[]))"
_SELECT_VALUES: Final = (
    "SELECT key, type, data FROM {table} WHERE key IN (SELECT unnest(?::VARCHAR[]))"
)
_SELECT_WRITES_OF: Final = """
    SELECT w.key, w.thread_id, w.namespace, w.checkpoint_id, w.task_id, w.idx, w.task_path,
        w.channel
    FROM ckpt_writes w JOIN (
        SELECT unnest(?::VARCHAR[]) AS t, unnest(?::VARCHAR[]) AS ns, unnest(?::VARCHAR[]) AS id
    ) k ON w.thread_id = k.t AND w.namespace = k.ns AND w.checkpoint_id = k.id
"""
_TABLES: Final = ("ckpt_checkpoints", "ckpt_blobs", "ckpt_writes")


def _sql_key(*parts: str) -> str:
    """SQL spelling the ``key`` of :func:`_key_of` from column expressions."""
    return "concat(" + ", ".join(f"strlen({p}), ':', {p}" for p in parts) + ")"


_COPY: Final = (
    """
    INSERT OR IGNORE INTO ckpt_checkpoints
    SELECT $target, namespace, checkpoint_id, parent_id, type, data, metadata, channels,
        versions, run_id, created_at
    FROM ckpt_checkpoints WHERE thread_id = $source
    """,
    f"""
    INSERT OR IGNORE INTO ckpt_blobs
    SELECT {_sql_key("$target", "namespace", "channel", "version")}, $target, namespace, channel,
        version, type, data
    FROM ckpt_blobs WHERE thread_id = $source
    """,  # noqa: S608 - built from constants only
    f"""
    INSERT OR IGNORE INTO ckpt_writes
    SELECT {_sql_key("$target", "namespace", "checkpoint_id", "task_id", "CAST(idx AS VARCHAR)")},
        $target, namespace, checkpoint_id, task_id, idx, task_path, channel, type, data
    FROM ckpt_writes WHERE thread_id = $source
    """,  # noqa: S608 - built from constants only
)
_PRUNE_KEEP_LATEST: Final = (
    """
    CREATE OR REPLACE TEMP TABLE ckpt_prune_keep AS
    SELECT thread_id, namespace, max(checkpoint_id) AS checkpoint_id
    FROM ckpt_checkpoints WHERE thread_id IN (SELECT unnest(?::VARCHAR[]))
    GROUP BY thread_id, namespace
    """,
    """
    DELETE FROM ckpt_writes w
    WHERE w.thread_id IN (SELECT unnest(?::VARCHAR[])) AND NOT EXISTS (
        SELECT 1 FROM ckpt_prune_keep k WHERE k.thread_id = w.thread_id
            AND k.namespace = w.namespace AND k.checkpoint_id = w.checkpoint_id)
    """,
    """
    DELETE FROM ckpt_blobs b
    WHERE b.thread_id IN (SELECT unnest(?::VARCHAR[])) AND NOT EXISTS (
        SELECT 1 FROM ckpt_prune_keep k JOIN ckpt_checkpoints c ON c.thread_id = k.thread_id
            AND c.namespace = k.namespace AND c.checkpoint_id = k.checkpoint_id
        WHERE c.thread_id = b.thread_id AND c.namespace = b.namespace
            AND list_position(c.channels, b.channel) IS NOT NULL
            AND c.versions[list_position(c.channels, b.channel)] = b.version)
    """,
)
_PRUNE_CHECKPOINTS: Final = """
    DELETE FROM ckpt_checkpoints c
    WHERE c.thread_id IN (SELECT unnest(?::VARCHAR[])) AND NOT EXISTS (
        SELECT 1 FROM ckpt_prune_keep k WHERE k.thread_id = c.thread_id
            AND k.namespace = c.namespace AND k.checkpoint_id = c.checkpoint_id)
"""
"""The last statement of a prune (after :data:`_PRUNE_KEEP_LATEST`): the checkpoints."""
_EXPIRED_THREADS: Final = """
    SELECT thread_id FROM ckpt_checkpoints GROUP BY thread_id HAVING max(created_at) < ?
"""
_DELETE_RUN_WRITES: Final = """
    DELETE FROM ckpt_writes w WHERE EXISTS (
        SELECT 1 FROM ckpt_checkpoints c
        WHERE c.run_id IN (SELECT unnest(?::VARCHAR[])) AND c.thread_id = w.thread_id
            AND c.namespace = w.namespace AND c.checkpoint_id = w.checkpoint_id)
"""
_DELETE_RUN_CHECKPOINTS: Final = """
    DELETE FROM ckpt_checkpoints WHERE run_id IN (SELECT unnest(?::VARCHAR[]))
"""


# --- small pure helpers -------------------------------------------------------------------------


def _metadata_json(thread_id: str, metadata: Mapping[str, Any]) -> str:
    """Metadata as the JSON text stored (and compared) by the store."""
    try:
        return json.dumps(dict(metadata), separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"duckdb checkpoint store: thread {thread_id!r}: metadata is not JSON-able: {exc}"
        ) from exc


_loads: Final = json.JSONDecoder().decode
"""``json.loads`` without its per-call argument checks."""


def _copy_json(value: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of parsed JSON (what a reader may change without touching the cache)."""
    return {
        key: item if item.__class__ not in (dict, list) else _copy_nested(item)
        for key, item in value.items()
    }


def _copy_nested(value: Any) -> Any:
    if isinstance(value, dict):
        mapping = cast(dict[str, Any], value)
        return {key: _copy_nested(item) for key, item in mapping.items()}
    if isinstance(value, list):
        return [_copy_nested(item) for item in cast(list[Any], value)]
    return value


def _metadata_matches(metadata_json: str, wanted: Mapping[str, Any] | None) -> bool:
    if not wanted:
        return True
    return metadata_matches(json.loads(metadata_json), wanted)


def _key_of(*parts: str) -> str:
    """The single-column key of a blob or write: each part as its UTF-8 length, ``:``, itself."""
    return "".join(f"{len(part.encode())}:{part}" for part in parts)


def _blob_key(thread_id: str, namespace: str, channel: str, version: str) -> str:
    return _key_of(thread_id, namespace, channel, version)


def _write_key(thread_id: str, namespace: str, checkpoint_id: str, task_id: str, idx: int) -> str:
    return _key_of(thread_id, namespace, checkpoint_id, task_id, str(idx))


def _quiet_close(con: _Con | None) -> None:
    """Close a connection whose database may be invalidated or on a full disk, quietly."""
    if con is None:
        return
    try:
        con.close()
    except duckdb.Error as exc:
        _log.debug("checkpoint_duckdb_close_failed", error=_plain(exc))


def _plain(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# --- in-memory state ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Rec:
    """A checkpoint row as the mirror keeps it (metadata as its JSON text, and parsed)."""

    checkpoint_id: str
    parent_id: str | None
    checkpoint: Blob
    metadata: str
    channel_versions: dict[str, str]
    run_id: str | None
    parsed: dict[str, Any] = field(default_factory=lambda: {})

    def size(self) -> int:
        return (
            160 + len(self.checkpoint.data) + len(self.metadata) + 64 * len(self.channel_versions)
        )

    def record(self, thread_id: str, namespace: str) -> CheckpointRecord:
        """A fresh record (its mappings are the reader's to keep or change)."""
        return CheckpointRecord(
            thread_id,
            namespace,
            self.checkpoint_id,
            self.parent_id,
            self.checkpoint,
            _copy_json(self.parsed),
            dict(self.channel_versions),
            self.run_id,
        )


@dataclass(frozen=True, slots=True)
class _WriteMeta:
    """A pending write without its value (the value lives in the value cache or the file)."""

    task_id: str
    task_path: str
    idx: int
    channel: str
    type: str


_WRITE_META_SIZE: Final = 120
_BLOB_KEY_SIZE: Final = 80


@dataclass(slots=True)
class _Mirror:
    """Everything but the values stored for one thread id, exactly as in the file + queue."""

    records: dict[tuple[str, str], _Rec] = field(default_factory=lambda: {})
    writes: dict[tuple[str, str], dict[tuple[str, int], _WriteMeta]] = field(
        default_factory=lambda: {}
    )
    blobs: set[tuple[str, str, str]] = field(default_factory=lambda: set())
    heads: dict[str, str] = field(default_factory=lambda: {})
    size: int = 0

    def add_record(self, namespace: str, rec: _Rec) -> None:
        self.records[(namespace, rec.checkpoint_id)] = rec
        self.size += rec.size()
        head = self.heads.get(namespace)
        if head is None or rec.checkpoint_id > head:
            self.heads[namespace] = rec.checkpoint_id


@dataclass(slots=True)
class _Batch:
    """Rows queued for one write transaction (dicts keep the first or last row per key)."""

    checkpoints: dict[tuple[str, str, str], _Row] = field(default_factory=lambda: {})
    blobs: dict[str, _Row] = field(default_factory=lambda: {})
    keep_writes: dict[str, _Row] = field(default_factory=lambda: {})
    replace_writes: dict[str, _Row] = field(default_factory=lambda: {})
    unsure_checkpoints: set[tuple[str, str, str]] = field(default_factory=lambda: set())
    """Rows of threads without a mirror: the worker checks whether they are stored already."""
    unsure_blobs: set[str] = field(default_factory=lambda: set())
    unsure_writes: set[str] = field(default_factory=lambda: set())
    threads: set[str] = field(default_factory=lambda: set())
    """Threads with rows in the batch (pending until it is written)."""
    unmirrored: set[str] = field(default_factory=lambda: set())
    """Threads with rows queued while they had no mirror: their values were not cached then,
    so the worker caches those it stores (see :meth:`_Core._cache_stored`)."""
    forgets: int = 0
    """The core's count of forgets when the batch was opened."""
    size: int = 0
    future: Future[None] | None = None
    refused: bool = False
    """The disk refused a try: its rows are checked against the file before the next one."""

    def unsure_of_all(self) -> None:
        """Check every row against the file when written (a try may have been stored)."""
        self.unsure_checkpoints = set(self.checkpoints)
        self.unsure_blobs = set(self.blobs)
        self.unsure_writes = set(self.keep_writes)

    @property
    def checkpoint_count(self) -> int:
        """The checkpoints the batch writes."""
        return len(self.checkpoints)


@dataclass(slots=True)
class _Stored:
    """The blob and write rows a batch inserted (rows already in the file left out)."""

    blobs: list[_Row]
    writes: list[_Row]


@dataclass(slots=True)
class _Loaded:
    """A thread read from the file, ready to become a mirror."""

    mirror: _Mirror


@dataclass(slots=True)
class _Plan:
    """A read answered from a mirror, waiting only for values missing from the value cache."""

    thread_id: str
    items: list[tuple[str, _Rec, list[_WriteMeta]]]
    values: dict[_VKey, Blob]
    missing: set[_VKey]


class _ValueCache:
    """Least recently used values (channel blobs and write values) within a byte budget."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._items: OrderedDict[_VKey, Blob] = OrderedDict()
        self._size = 0

    def get(self, key: _VKey) -> Blob | None:
        blob = self._items.get(key)
        if blob is not None:
            self._items.move_to_end(key)
        return blob

    def put(self, key: _VKey, blob: Blob) -> None:
        cost = len(blob.data) + 100
        if cost > self._budget // 4:
            self.discard(key)
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._size -= len(old.data) + 100
        self._items[key] = blob
        self._size += cost
        while self._size > self._budget:
            _, evicted = self._items.popitem(last=False)
            self._size -= len(evicted.data) + 100

    def discard(self, key: _VKey) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self._size -= len(old.data) + 100

    def drop_threads(self, thread_ids: set[str] | None) -> None:
        """Forget the values of these threads (all when None)."""
        if thread_ids is None:
            self._items.clear()
            self._size = 0
            return
        for key in [key for key in self._items if key[1] in thread_ids]:
            self.discard(key)


# --- the shared core ----------------------------------------------------------------------------


class _Core:
    """One file's connection, worker thread, caches and write queue, shared by its stores.

    Rules: only the worker thread touches ``_con`` and only the reader thread ``_rcon``;
    ``_lock`` guards the in-memory state and is never held while waiting for either (they take
    it briefly).
    """

    def __init__(self, path: str, cache_bytes: int, after: Future[None] | None = None) -> None:
        self.path = path
        self.closed: Future[None] = Future()
        """Done once the connection is closed (the next core on the file waits for it)."""
        self._after = after
        self.users = 0
        self._cache_bytes = cache_bytes
        self._lock = threading.RLock()
        self._wake = threading.Event()
        """Set when a caller waits for the worker: the pending batch is written at once."""
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="agentmesh-ckpt-duckdb"
        )
        self._reader = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="agentmesh-ckpt-duckdb-read"
        )
        self._con: _Con | None = None
        self._rcon: _Con | None = None
        """A second connection to the database, used only by the reader thread."""
        self._pending: dict[str, int] = {}
        """Threads with rows or changes queued for the worker (not yet committed)."""
        self._pending_all = 0
        """Changes queued for the worker that may touch any thread (deletes by run, expiry)."""
        self._failure: CheckpointError | None = None
        self._failure_reported = False
        self._held: list[_Batch] = []
        """(Worker only) batches the disk refused, oldest first, written before anything else."""
        self._invalidated = False
        """DuckDB gave up on the database: the worker opens the file again on its next try."""
        self._refused_since: float | None = None
        """(Worker) when the disk began refusing writes (monotonic), while it does."""
        self.reopens = 0
        """Times the file was opened again after DuckDB invalidated the database."""
        self._closed = False
        self._mirrors: OrderedDict[str, _Mirror] = OrderedDict()
        self._mirror_bytes = 0
        self._too_big: set[str] = set()
        self._heads: dict[tuple[str, str], str | None] = {}
        self._values = _ValueCache(cache_bytes)
        self._gens: dict[str, int] = {}
        self._global_gen = 0
        self._forgets = 0
        """Bumped whenever cached facts are dropped (deletes, copies, prunes, expiry)."""
        self._batch: _Batch | None = None
        self._queued_bytes = 0
        self._last_write: Future[None] | None = None
        self.opened: Future[None] = self._executor.submit(self._open)

    # --- worker side ---------------------------------------------------------------------------

    def _error(self, exc: BaseException) -> CheckpointError:
        cause = _plain(exc)
        where = f"duckdb checkpoint store at {self.path}"
        if isinstance(exc, duckdb.FatalException):
            self._invalidated = True
            return CheckpointUnavailableError(
                f"{where}: {cause} (the file is opened again on the next try)"
            )
        if disk_refused(exc):
            return CheckpointUnavailableError(f"{where}: the disk refused a write: {cause}")
        if isinstance(exc, duckdb.IOException) and "lock" in cause.lower():
            return CheckpointError(
                f"{where}: another process holds the file "
                f"(DuckDB allows one process to open it for writing): {cause}"
            )
        return CheckpointError(f"{where}: {cause}")

    def _work(self, fn: Callable[[_Con], _T]) -> _T:
        """Run ``fn`` on the connection (in the worker) once nothing is held; translate failures."""
        self._write_held()
        return self._on(self._con, fn)

    def _read(self, fn: Callable[[_Con], _T]) -> _T:
        """Run ``fn`` on the reader's connection (in the reader thread), translating failures."""
        if self._rcon is None and not self._closed:
            raise CheckpointUnavailableError(
                f"duckdb checkpoint store at {self.path} is being opened again"
            )
        try:
            return self._on(self._rcon, fn)
        except CheckpointUnavailableError:
            if self._invalidated:
                self._reopen_soon()
            raise

    def _on(self, con: _Con | None, fn: Callable[[_Con], _T]) -> _T:
        if self._failure is not None:
            self._failure_reported = True
            raise self._failure
        if con is None:
            raise CheckpointError(f"duckdb checkpoint store at {self.path} is closed")
        try:
            return fn(con)
        except (duckdb.Error, OSError) as exc:
            raise self._error(exc) from exc

    def _write_held(self) -> None:
        """(Worker) open an invalidated file again, then write the held batches in order.

        Raises:
            CheckpointUnavailableError: The disk still refuses (the batches stay held).
            CheckpointError: Any other failure (the store then refuses further calls).
        """
        held = self._held
        if not held and not self._invalidated:
            return
        try:
            if self._invalidated:
                self._reopen()
            while held:
                batch = held[0]
                if batch.refused:
                    batch.unsure_of_all()  # a try may have reached the file before failing
                stored = self._on(self._con, lambda con, b=batch: _insert_batch(con, b))
                held.pop(0)
                self._stored(batch, stored)
        except CheckpointUnavailableError as exc:
            if held:
                held[0].refused = True
            if self._refused_since is None:
                self._refused_since = time.monotonic()
                _log.warning("checkpoint_duckdb_writes_held", path=self.path, error=str(exc))
            raise
        except CheckpointError as exc:
            self._fail(exc)
            raise
        if self._refused_since is not None:
            _log.info(
                "checkpoint_duckdb_writes_resumed",
                path=self.path,
                seconds_held=round(time.monotonic() - self._refused_since, 3),
            )
            self._refused_since = None

    def _reopen(self) -> None:
        """(Worker) close both connections to the invalidated database and open the file again.

        DuckDB drops a database when its last connection closes; opening the file again
        replays its write-ahead log. While that fails for lack of room the database stays
        marked invalidated, so the next try opens it again.
        """
        self._reader.submit(self._close_reader_quietly).result()
        con, self._con = self._con, None
        _quiet_close(con)
        self._connect()
        self._invalidated = False
        self.reopens += 1
        _log.warning("checkpoint_duckdb_reopened", path=self.path, reopens=self.reopens)

    def _reopen_soon(self) -> None:
        """(Reader) the reader found the database invalidated: let the worker open it again."""
        with self._lock:
            if self._closed:
                return
            self._executor.submit(self._try_held)

    def _try_held(self) -> None:
        """(Worker) try the held writes (and a reopen) now; a failure is kept for later calls."""
        try:
            self._write_held()
        except CheckpointError as exc:
            _log.debug("checkpoint_duckdb_retry_failed", path=self.path, error=str(exc))

    def _drop_held(self) -> int:
        """(Worker) forget the held batches; return how many checkpoints they held."""
        lost = 0
        with self._lock:
            for batch in self._held:
                lost += batch.checkpoint_count
                self._queued_bytes -= batch.size
                self._settle(batch.threads)
        self._held.clear()
        return lost

    def _fail(self, exc: CheckpointError) -> None:
        """(Worker) a write failed for good: refuse further calls, drop what is held."""
        with self._lock:
            if self._failure is None:
                self._failure = CheckpointError(
                    f"{exc}; a queued checkpoint write failed, so the store refuses further "
                    "calls: reopen it"
                )
                _log.error("checkpoint_duckdb_write_failed", path=self.path, error=str(exc))
        self._drop_held()

    def _stored(self, batch: _Batch, stored: _Stored) -> None:
        """(Worker) the batch is in the file: cache what it stored, settle its threads."""
        with self._lock:
            if batch.unmirrored:
                self._cache_stored(batch, stored)
            self._queued_bytes -= batch.size
            self._settle(batch.threads)

    def _open(self) -> None:
        if self._after is not None:  # the previous core on this file is still closing
            wait([self._after])
        self._connect()

    def _connect(self) -> None:
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            con = duckdb.connect(self.path, config=dict(_CONFIG))
        except (duckdb.Error, OSError) as exc:
            raise self._error(exc) from exc
        try:
            _migrate(con, self.path)
            reader = con.cursor()  # same database (and file lock), its own transactions
        except (duckdb.Error, OSError) as exc:
            con.close()
            raise self._error(exc) from exc
        except BaseException:
            con.close()
            raise
        self._rcon = reader
        self._con = con

    def _close_reader(self) -> None:
        con, self._rcon = self._rcon, None
        if con is not None:
            con.close()

    def _close_reader_quietly(self) -> None:
        con, self._rcon = self._rcon, None
        _quiet_close(con)

    def _close_worker(self, reader_closed: Future[None]) -> None:
        wait([reader_closed])  # the database stays open while any connection to it is
        lost, reason = 0, ""
        try:
            self._write_held()  # one more try
        except CheckpointUnavailableError as exc:
            reason = str(exc)
            lost = self._drop_held()
            _log.error("checkpoint_duckdb_writes_lost", path=self.path, checkpoints=lost)
        except CheckpointError:
            pass  # raised to the caller that was waiting, or by close_steps
        reopened, self._rcon = self._rcon, None  # a reader made by a reopen during the try
        con, self._con = self._con, None
        try:
            if self._invalidated or lost or reopened is not None:
                _quiet_close(reopened)  # the reader thread is done: its close ran first
                _quiet_close(con)  # a database DuckDB gave up on, or a disk still full
            else:
                reader_closed.result()
                if con is not None:
                    con.close()
        except duckdb.Error as exc:
            raise self._error(exc) from exc
        finally:
            self._set_closed()
        if lost:
            raise CheckpointError(
                f"duckdb checkpoint store at {self.path} closed while the disk refused its "
                f"writes: {lost} checkpoints held in memory were lost ({reason})"
            )

    def _set_closed(self) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def _write_batch(self, batch: _Batch) -> None:
        # Group commit: let more rows join the batch, unless someone waits for the file.
        self._wake.wait(_LINGER)
        with self._lock:
            if self._batch is batch:
                self._batch = None
            self._wake.clear()
        if self._failure is not None:
            with self._lock:
                self._queued_bytes -= batch.size
                self._settle(batch.threads)
            self._failure_reported = True
            raise self._failure
        self._held.append(batch)  # behind any the disk refused: the order is kept
        self._write_held()

    def _cache_stored(self, batch: _Batch, stored: _Stored) -> None:
        """(Lock held) cache the values of unmirrored threads that ``batch`` stored.

        A thread's values are cached when it is put while mirrored; a thread put before its
        mirror existed (a new thread's first steps, or one evicted) had its values only queued,
        so its first read went to the file behind the write queue. Once the batch is stored
        its rows are the file's, so they can be cached: the blobs and keep-first writes the
        worker inserted (those already stored are left out: the file's copy wins) and every
        replacing write. Nothing is cached when cached facts were dropped since the batch
        opened (a delete or copy may already have superseded these rows).
        """
        if batch.forgets != self._forgets:
            return
        threads = batch.unmirrored
        for row in stored.blobs:
            if row[1] in threads:
                self._values.put(("b", row[1], row[2], row[3], row[4], 0), Blob(row[5], row[6]))
        for row in stored.writes:
            if row[1] in threads:
                self._values.put(
                    ("w", row[1], row[2], row[3], row[4], row[5]), Blob(row[8], row[9])
                )

    # --- caller side helpers (call with the lock held) ---------------------------------------

    def _check(self) -> None:
        if self._failure is not None:
            self._failure_reported = True
            raise self._failure
        if self._closed:
            raise CheckpointError(f"duckdb checkpoint store at {self.path} is closed")

    def _submit(self, fn: Callable[[_Con], _T]) -> Future[_T]:
        """Queue a non-write call behind the pending writes (closing the current batch)."""
        self._batch = None
        self._wake.set()
        return self._executor.submit(self._work, fn)

    def _submit_read(self, thread_id: str, fn: Callable[[_Con], _T]) -> Future[_T]:
        """Run a read of one thread's rows, on the reader when it can.

        The reader answers at once when nothing queued could change the thread's rows (they
        are all committed); otherwise the read waits behind the write queue, on the worker.
        """
        if thread_id in self._pending or self._pending_all:
            return self._submit(fn)
        return self._reader.submit(self._read, fn)

    def _submit_change(
        self, threads: Collection[str] | None, fn: Callable[[_Con], _T]
    ) -> Future[_T]:
        """Queue a call that changes these threads' rows (any thread's when None)."""
        touched = set(threads) if threads is not None else None
        if touched is None:
            self._pending_all += 1
        else:
            for thread_id in touched:
                self._pending[thread_id] = self._pending.get(thread_id, 0) + 1
        future = self._submit(fn)

        def settle(_: Future[_T]) -> None:
            with self._lock:
                if touched is None:
                    self._pending_all -= 1
                else:
                    self._settle(touched)

        future.add_done_callback(settle)
        return future

    def _settle(self, threads: Collection[str]) -> None:
        """(Lock held) one queued change of each of these threads is done."""
        pending = self._pending
        for thread_id in threads:
            left = pending[thread_id] - 1
            if left:
                pending[thread_id] = left
            else:
                del pending[thread_id]

    def _queued_for(self, batch: _Batch, thread_id: str) -> None:
        """(Lock held) note that ``batch`` holds rows of the thread."""
        if thread_id not in batch.threads:
            batch.threads.add(thread_id)
            self._pending[thread_id] = self._pending.get(thread_id, 0) + 1

    def _gen(self, thread_id: str) -> tuple[int, int]:
        return (self._global_gen, self._gens.get(thread_id, 0))

    def _bump(self, thread_id: str) -> None:
        gens = self._gens
        if len(gens) >= _MAX_FACTS and thread_id not in gens:
            # a reset counter could repeat a value a waiter saw: make every waiter look again
            gens.clear()
            self._global_gen += 1
        gens[thread_id] = gens.get(thread_id, 0) + 1

    def _set_head(self, thread_id: str, namespace: str, head: str | None) -> None:
        """Remember the newest checkpoint of an unmirrored namespace (see ``_MAX_FACTS``)."""
        if len(self._heads) >= _MAX_FACTS:
            self._heads.clear()
        self._heads[(thread_id, namespace)] = head

    def _set_too_big(self, thread_id: str) -> None:
        if len(self._too_big) >= _MAX_FACTS:
            self._too_big.clear()
        self._too_big.add(thread_id)

    def _backlog(self) -> Future[None]:
        """(Lock held) what a put over the queue budget waits for.

        The last write, or, when it is done (refused by the disk: its batch is held), another
        try at the held writes, which raises while the disk still refuses.
        """
        last = self._last_write
        if last is not None and not last.done():
            return last
        return self._submit(lambda con: None)

    def _queue(self) -> _Batch:
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch(forgets=self._forgets)
            batch.future = self._executor.submit(self._write_batch, batch)
            self._last_write = batch.future
        return batch

    def _mirror(self, thread_id: str) -> _Mirror | None:
        mirror = self._mirrors.get(thread_id)
        if mirror is not None:
            self._mirrors.move_to_end(thread_id)
        return mirror

    def _install(self, thread_id: str, mirror: _Mirror) -> None:
        self._mirrors[thread_id] = mirror
        self._mirror_bytes += mirror.size
        self._evict()

    def _grow(self, thread_id: str, mirror: _Mirror, before: int) -> None:
        """Account for a mirror that grew from ``before`` bytes (ignored once it was evicted)."""
        if self._mirrors.get(thread_id) is mirror:
            self._mirror_bytes += mirror.size - before
            self._evict()

    def _evict(self) -> None:
        while self._mirror_bytes > self._cache_bytes and self._mirrors:
            thread_id, mirror = self._mirrors.popitem(last=False)
            self._mirror_bytes -= mirror.size
            for namespace, head in mirror.heads.items():
                self._set_head(thread_id, namespace, head)
            if mirror.size > self._cache_bytes // 2:
                self._set_too_big(thread_id)

    def _forget(self, thread_ids: set[str] | None) -> None:
        """Drop every cached fact about these threads (all when None)."""
        self._forgets += 1
        if thread_ids is None:
            self._mirrors.clear()
            self._mirror_bytes = 0
            self._too_big.clear()
            self._heads.clear()
            self._global_gen += 1
        else:
            for thread_id in thread_ids:
                mirror = self._mirrors.pop(thread_id, None)
                if mirror is not None:
                    self._mirror_bytes -= mirror.size
                self._too_big.discard(thread_id)
                self._bump(thread_id)
            for key in [key for key in self._heads if key[0] in thread_ids]:
                del self._heads[key]
        self._values.drop_threads(thread_ids)

    def _load_mirror(self, thread_id: str) -> _Steps[_Mirror | None]:
        """The thread's mirror, loading it from the file when needed (None: too big)."""
        while True:
            with self._lock:
                self._check()
                mirror = self._mirror(thread_id)
                if mirror is not None or thread_id in self._too_big:
                    return mirror
                gen = self._gen(thread_id)
                future = self._submit_read(thread_id, lambda con: _load_thread(con, thread_id))
            loaded: _Loaded = yield future
            with self._lock:
                if gen != self._gen(thread_id) or thread_id in self._mirrors:
                    continue
                if loaded.mirror.size <= self._cache_bytes // 2:
                    self._install(thread_id, loaded.mirror)
                    if thread_id in self._mirrors:
                        return loaded.mirror
                # Too big for the cache: this thread is read from the file from now on.
                self._set_too_big(thread_id)
                for namespace, head in loaded.mirror.heads.items():
                    self._set_head(thread_id, namespace, head)
                return None

    # --- operations (generators: see _run_sync / _run_async) ---------------------------------

    def open_steps(self) -> _Steps[None]:
        """Wait until the file is open and migrated."""
        yield self.opened

    def put_steps(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        extends: str | None,
        check_extends: bool,
        durable: bool,
    ) -> _Steps[None]:
        thread_id, namespace, checkpoint_id = (
            record.thread_id,
            record.namespace,
            record.checkpoint_id,
        )
        metadata = _metadata_json(thread_id, record.metadata)
        rec = _Rec(
            checkpoint_id,
            record.parent_id,
            record.checkpoint,
            metadata,
            dict(record.channel_versions),
            record.run_id,
            _loads(metadata),
        )
        if check_extends:
            yield from self._load_mirror(thread_id)
        while True:
            with self._lock:
                self._check()
                if self._queued_bytes > _MAX_QUEUED_BYTES and self._last_write is not None:
                    backlog: Future[None] | None = self._backlog()
                    asked: Future[tuple[str | None, bool]] | None = None
                    gen = (0, 0)
                else:
                    backlog = None
                    written = self._put_locked(
                        rec, thread_id, namespace, blobs, extends, check_extends
                    )
                    if written is not None:
                        break
                    gen = self._gen(thread_id)
                    asked = self._submit(
                        lambda con: _head_and_exists(con, thread_id, namespace, checkpoint_id)
                    )
            if backlog is not None:
                self._wake.set()
                yield backlog
                continue
            assert asked is not None
            head, exists = yield asked
            with self._lock:
                self._check()
                if gen != self._gen(thread_id):
                    continue  # the thread changed meanwhile: check again
                self._set_head(thread_id, namespace, head)
                if head != extends and not exists:
                    raise CheckpointConflictError(thread_id, namespace, extends, head)
                written = self._put_locked(rec, thread_id, namespace, blobs, extends, False)
                break
        if durable and written is not None:
            self._wake.set()
            yield written

    def _put_locked(
        self,
        rec: _Rec,
        thread_id: str,
        namespace: str,
        blobs: Mapping[tuple[str, str], Blob],
        extends: str | None,
        check_extends: bool,
    ) -> Future[None] | None:
        """Check and queue a put; None when the head must first be read from the file."""
        checkpoint_id = rec.checkpoint_id
        mirror = self._mirror(thread_id)
        if mirror is not None:
            stored = (namespace, checkpoint_id) in mirror.records
            if check_extends and not stored:
                head = mirror.heads.get(namespace)
                if head != extends:
                    raise CheckpointConflictError(thread_id, namespace, extends, head)
        else:
            key = (thread_id, namespace)
            if check_extends:
                if key not in self._heads:
                    return None
                head = self._heads[key]
                if head != extends:
                    return None  # maybe an idempotent retry: ask the file
            if key in self._heads:
                head = self._heads[key]
                if head is None or checkpoint_id > head:
                    self._heads[key] = checkpoint_id
            stored = False
        self._bump(thread_id)
        batch = self._queue()
        self._queued_for(batch, thread_id)
        now = time.time()
        if not stored:
            ckey = (thread_id, namespace, checkpoint_id)
            if ckey not in batch.checkpoints:
                batch.checkpoints[ckey] = (
                    thread_id,
                    namespace,
                    checkpoint_id,
                    rec.parent_id,
                    rec.checkpoint.type,
                    rec.checkpoint.data,
                    rec.metadata,
                    list(rec.channel_versions),
                    list(rec.channel_versions.values()),
                    rec.run_id,
                    now,
                )
                self._count(batch, len(rec.checkpoint.data) + len(rec.metadata))
                if mirror is None:
                    batch.unsure_checkpoints.add(ckey)
            if mirror is not None:
                before = mirror.size
                mirror.add_record(namespace, rec)
                self._grow(thread_id, mirror, before)
        if mirror is None and blobs:
            batch.unmirrored.add(thread_id)
        for (channel, version), blob in blobs.items():
            if mirror is not None:
                if (namespace, channel, version) in mirror.blobs:
                    continue
                before = mirror.size
                mirror.blobs.add((namespace, channel, version))
                mirror.size += _BLOB_KEY_SIZE
                self._grow(thread_id, mirror, before)
                self._values.put(("b", thread_id, namespace, channel, version, 0), blob)
            bkey = _blob_key(thread_id, namespace, channel, version)
            if bkey not in batch.blobs:
                batch.blobs[bkey] = (
                    bkey,
                    thread_id,
                    namespace,
                    channel,
                    version,
                    blob.type,
                    blob.data,
                )
                self._count(batch, len(blob.data))
                if mirror is None:
                    batch.unsure_blobs.add(bkey)
        assert batch.future is not None
        return batch.future

    def _count(self, batch: _Batch, size: int) -> None:
        batch.size += size + 100
        self._queued_bytes += size + 100

    def put_writes_steps(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str,
        writes: Sequence[WriteRecord],
        durable: bool,
    ) -> _Steps[None]:
        while True:
            with self._lock:
                self._check()
                if self._queued_bytes > _MAX_QUEUED_BYTES and self._last_write is not None:
                    waiting = self._backlog()
                    self._wake.set()
                else:
                    break
            yield waiting
        with self._lock:
            self._check()
            self._bump(thread_id)
            mirror = self._mirror(thread_id)
            before = mirror.size if mirror is not None else 0
            known = mirror.writes.setdefault((namespace, checkpoint_id), {}) if mirror else None
            batch = self._queue()
            self._queued_for(batch, thread_id)
            if known is None and writes:
                batch.unmirrored.add(thread_id)
            for write in writes:
                wkey = (write.task_id, write.idx)
                if known is not None:
                    if write.idx >= 0 and wkey in known:
                        continue
                    if wkey not in known:
                        assert mirror is not None
                        mirror.size += _WRITE_META_SIZE
                    known[wkey] = _WriteMeta(
                        write.task_id, write.task_path, write.idx, write.channel, write.value.type
                    )
                    self._values.put(
                        ("w", thread_id, namespace, checkpoint_id, write.task_id, write.idx),
                        write.value,
                    )
                full_key = _write_key(thread_id, namespace, checkpoint_id, write.task_id, write.idx)
                row = (
                    full_key,
                    thread_id,
                    namespace,
                    checkpoint_id,
                    write.task_id,
                    write.idx,
                    write.task_path,
                    write.channel,
                    write.value.type,
                    write.value.data,
                )
                if write.idx < 0:
                    batch.replace_writes[full_key] = row
                elif full_key not in batch.keep_writes:
                    batch.keep_writes[full_key] = row
                    if known is None:
                        batch.unsure_writes.add(full_key)
                else:
                    continue
                self._count(batch, len(write.value.data))
            if mirror is not None:
                self._grow(thread_id, mirror, before)
            future = batch.future
        if durable and future is not None:
            self._wake.set()
            yield future

    def flush_steps(self) -> _Steps[None]:
        with self._lock:
            self._check()
            future = self._submit(lambda con: None)
        yield future

    def get_cached(
        self, thread_id: str, namespace: str, checkpoint_id: str | None
    ) -> tuple[bool, StoredCheckpoint | None]:
        """A get answered from memory alone: ``(True, result)``, or ``(False, None)``."""
        with self._lock:
            self._check()
            mirrored, plan = self._get_plan(thread_id, namespace, checkpoint_id)
            if not mirrored or (plan is not None and plan.missing):
                return False, None
        return True, (self._build(plan)[0] if plan is not None else None)

    def get_steps(
        self, thread_id: str, namespace: str, checkpoint_id: str | None
    ) -> _Steps[StoredCheckpoint | None]:
        if (yield from self._load_mirror(thread_id)) is not None:
            with self._lock:
                self._check()
                mirrored, plan = self._get_plan(thread_id, namespace, checkpoint_id)
            if mirrored:
                if plan is None:
                    return None
                result = yield from self._finish(plan)
                return result[0]
        # Too big to mirror (or evicted meanwhile): read the file.
        found = yield from self._db_list(ListQuery(thread_id, namespace, checkpoint_id, limit=1))
        return found[0] if found else None

    def _get_plan(
        self, thread_id: str, namespace: str, checkpoint_id: str | None
    ) -> tuple[bool, _Plan | None]:
        """(Lock held) whether the thread is mirrored, and the plan (None: no such checkpoint)."""
        mirror = self._mirror(thread_id)
        if mirror is None:
            return False, None
        wanted = checkpoint_id if checkpoint_id is not None else mirror.heads.get(namespace)
        rec = mirror.records.get((namespace, wanted)) if wanted is not None else None
        if rec is None:
            return True, None
        return True, self._plan(thread_id, mirror, [(namespace, rec)])

    def list_cached(self, query: ListQuery) -> tuple[bool, list[StoredCheckpoint]]:
        """A list answered from memory alone: ``(True, result)``, or ``(False, [])``."""
        if query.thread_id is None:
            return False, []
        with self._lock:
            self._check()
            plan = self._list_plan(query.thread_id, query)
            if plan is None or plan.missing:
                return False, []
        return True, self._build(plan)

    def list_steps(self, query: ListQuery) -> _Steps[list[StoredCheckpoint]]:
        if query.limit is not None and query.limit <= 0:
            return []
        thread_id = query.thread_id
        if thread_id is not None and (yield from self._load_mirror(thread_id)) is not None:
            with self._lock:
                self._check()
                plan = self._list_plan(thread_id, query)
            if plan is not None:
                return (yield from self._finish(plan))
        return (yield from self._db_list(query))

    def _list_plan(self, thread_id: str, query: ListQuery) -> _Plan | None:
        """(Lock held) the plan of a list of a mirrored thread; None when not mirrored."""
        mirror = self._mirror(thread_id)
        if mirror is None:
            return None
        chosen: list[tuple[str, _Rec]] = []
        if query.limit is not None and query.limit <= 0:
            return self._plan(thread_id, mirror, chosen)
        for namespace, checkpoint_id in sorted(
            mirror.records, key=lambda k: (k[1], k[0]), reverse=True
        ):
            if query.namespace is not None and namespace != query.namespace:
                continue
            if query.checkpoint_id is not None and checkpoint_id != query.checkpoint_id:
                continue
            if query.before is not None and not checkpoint_id < query.before:
                continue
            rec = mirror.records[(namespace, checkpoint_id)]
            if query.metadata and not metadata_matches(rec.parsed, query.metadata):
                continue
            chosen.append((namespace, rec))
            if query.limit is not None and len(chosen) >= query.limit:
                break
        return self._plan(thread_id, mirror, chosen)

    def _plan(self, thread_id: str, mirror: _Mirror, chosen: list[tuple[str, _Rec]]) -> _Plan:
        """What a mirrored read returns, with the values the cache holds (lock held)."""
        plan = _Plan(thread_id, [], {}, set())
        for namespace, rec in chosen:
            for channel, version in rec.channel_versions.items():
                if (namespace, channel, version) in mirror.blobs:
                    self._want(plan, ("b", thread_id, namespace, channel, version, 0))
            metas = mirror.writes.get((namespace, rec.checkpoint_id))
            write_list = list(metas.values()) if metas else []
            for meta in write_list:
                self._want(
                    plan, ("w", thread_id, namespace, rec.checkpoint_id, meta.task_id, meta.idx)
                )
            plan.items.append((namespace, rec, write_list))
        return plan

    def _want(self, plan: _Plan, key: _VKey) -> None:
        blob = self._values.get(key)
        if blob is not None:
            plan.values[key] = blob
        else:
            plan.missing.add(key)

    def _finish(self, plan: _Plan) -> _Steps[list[StoredCheckpoint]]:
        if plan.missing:
            missing = list(plan.missing)
            with self._lock:
                self._check()
                gen = self._gen(plan.thread_id)
                future = self._submit_read(
                    plan.thread_id, lambda con: _fetch_values(con, plan.thread_id, missing)
                )
            fetched: dict[_VKey, Blob] = yield future
            plan.values.update(fetched)
            with self._lock:
                # a write made meanwhile may have replaced a value read here: cache none then
                if gen == self._gen(plan.thread_id):
                    for key, blob in fetched.items():
                        self._values.put(key, blob)
        return self._build(plan)

    def _build(self, plan: _Plan) -> list[StoredCheckpoint]:
        """The checkpoints of a plan whose values are all at hand."""
        thread_id = plan.thread_id
        out: list[StoredCheckpoint] = []
        for namespace, rec, metas in plan.items:
            values: dict[str, Blob] = {}
            for channel, version in rec.channel_versions.items():
                blob = plan.values.get(("b", thread_id, namespace, channel, version, 0))
                if blob is not None:
                    values[channel] = blob
            writes: list[WriteRecord] = []
            for meta in metas or ():
                value = plan.values.get(
                    ("w", thread_id, namespace, rec.checkpoint_id, meta.task_id, meta.idx)
                )
                if value is not None:
                    writes.append(
                        WriteRecord(meta.task_id, meta.task_path, meta.idx, meta.channel, value)
                    )
            if len(writes) > 1:
                writes.sort(key=lambda w: (w.task_path, w.task_id, w.idx))
            out.append(StoredCheckpoint(rec.record(thread_id, namespace), values, writes))
        return out

    def _db_list(self, query: ListQuery) -> _Steps[list[StoredCheckpoint]]:
        with self._lock:
            self._check()
            future = self._submit(lambda con: _list_from_file(con, query))
        return (yield future)

    def delete_thread_steps(self, thread_id: str) -> _Steps[int]:
        with self._lock:
            self._check()
            self._forget({thread_id})
            future = self._submit_change({thread_id}, lambda con: _delete_threads(con, [thread_id]))
            self._install(thread_id, _Mirror())
        deleted: int = yield future
        return deleted

    def delete_for_runs_steps(self, run_ids: Sequence[str]) -> _Steps[None]:
        runs = list(run_ids)
        if not runs:
            return
        with self._lock:
            self._check()
            self._forget(None)
            future = self._submit_change(None, lambda con: _delete_for_runs(con, runs))
        yield future

    def copy_thread_steps(self, source: str, target: str) -> _Steps[None]:
        with self._lock:
            self._check()
            self._forget({target})
            future = self._submit_change({target}, lambda con: _copy_thread(con, source, target))
        yield future

    def prune_steps(self, thread_ids: Sequence[str], keep_latest: bool) -> _Steps[int]:
        threads = list(dict.fromkeys(thread_ids))
        if not threads:
            return 0
        with self._lock:
            self._check()
            self._forget(set(threads))
            if keep_latest:
                future = self._submit_change(threads, lambda con: _prune_keep_latest(con, threads))
            else:
                future = self._submit_change(threads, lambda con: _delete_threads(con, threads))
                for thread_id in threads:
                    self._install(thread_id, _Mirror())
        deleted: int = yield future
        return deleted

    def expire_steps(self, older_than: float) -> _Steps[int]:
        with self._lock:
            self._check()
            future = self._submit_change(None, lambda con: _expire(con, older_than))
        expired: list[str] = yield future
        with self._lock:
            self._forget(set(expired))
        return len(expired)

    def size_steps(self) -> _Steps[int]:
        path = self.path
        with self._lock:
            self._check()
            future = self._submit(lambda con: _file_size(con, path))
        return (yield future)

    def close_steps(self) -> _Steps[None]:
        """Commit what is queued, close the connection and stop the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._batch = None
            last = self._last_write
            self._wake.set()
            reader_closed = self._reader.submit(self._close_reader)
            future = self._executor.submit(self._close_worker, reader_closed)
        failure: CheckpointError | None = None
        try:
            if last is not None:
                try:
                    yield last
                except CheckpointUnavailableError:
                    pass  # held: the worker tries once more as it closes
                except CheckpointError as exc:
                    if not self._failure_reported:  # nobody was told yet: closing tells
                        failure = exc
            yield future
        finally:
            self._executor.shutdown(wait=False)
            self._reader.shutdown(wait=False)
            if future.done():
                self._set_closed()
        if failure is not None:
            raise failure


# --- worker functions (run in the worker thread, on the connection) ------------------------------


def _migrate(con: _Con, path: str) -> None:
    """Apply the migrations the file lacks, each in its own transaction."""
    con.execute(CREATE_MIGRATIONS_TABLE)
    rows = con.execute(f"SELECT version FROM {MIGRATIONS_TABLE}").fetchall()  # noqa: S608
    applied = {int(row[0]) for row in rows}
    if applied and max(applied) > SCHEMA_VERSION:
        raise CheckpointError(
            f"duckdb checkpoint store at {path} has schema version {max(applied)}, newer than "
            f"this code's {SCHEMA_VERSION}: upgrade agentmesh-checkpoint"
        )
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in migration.statements:
                con.execute(statement)
            con.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES (?, ?)",  # noqa: S608
                [migration.version, migration.name],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        _log.info(
            "checkpoint_duckdb_migrated", path=path, version=migration.version, name=migration.name
        )


def _in_transaction(con: _Con, work: Callable[[], _T]) -> _T:
    con.execute("BEGIN TRANSACTION")
    try:
        result = work()
        con.execute("COMMIT")
    except BaseException:
        # end the transaction whatever failed (a COMMIT too), without hiding the first error
        try:
            con.execute("ROLLBACK")
        except duckdb.Error as exc:
            _log.debug("checkpoint_duckdb_rollback_failed", error=_plain(exc))
        raise
    return result


def _insert_batch(con: _Con, batch: _Batch) -> _Stored:
    """Write a batch: plain multi-row inserts of the rows not stored yet, one transaction.

    ``INSERT OR IGNORE`` is avoided: DuckDB's conflict path costs several times a plain insert
    for large values. Rows of mirrored threads are known to be new; the others are looked up by
    key first (key columns only, no value bytes read).

    Returns:
        The blob and write rows inserted.
    """
    checkpoints = batch.checkpoints
    blobs = batch.blobs
    keep = batch.keep_writes
    if batch.unsure_checkpoints:
        unsure = list(batch.unsure_checkpoints)
        rows = con.execute(
            _EXISTING_CHECKPOINTS,
            [[k[0] for k in unsure], [k[1] for k in unsure], [k[2] for k in unsure]],
        ).fetchall()
        if rows:
            stored = {(r[0], r[1], r[2]) for r in rows}
            checkpoints = {k: v for k, v in checkpoints.items() if k not in stored}
    if batch.unsure_blobs:
        stored_keys = _existing_keys(con, "ckpt_blobs", batch.unsure_blobs)
        if stored_keys:
            blobs = {k: v for k, v in blobs.items() if k not in stored_keys}
    if batch.unsure_writes:
        stored_keys = _existing_keys(con, "ckpt_writes", batch.unsure_writes)
        if stored_keys:
            keep = {k: v for k, v in keep.items() if k not in stored_keys}
    replace = batch.replace_writes
    work: list[Callable[[], None]] = []
    if checkpoints:
        rows_c = list(checkpoints.values())
        work.append(lambda: _insert_rows(con, "ckpt_checkpoints", _CKPT_INSERT_COLUMNS, rows_c))
    if blobs:
        rows_b = list(blobs.values())
        work.append(lambda: _insert_rows(con, "ckpt_blobs", _BLOB_COLUMNS, rows_b))
    if replace:
        keys_r = list(replace)
        work.append(lambda: con.execute(_DELETE_KEYS, [keys_r]) and None)
    writes = [*keep.values(), *replace.values()]
    if writes:
        work.append(lambda: _insert_rows(con, "ckpt_writes", _WRITE_COLUMNS, writes))
    if len(work) == 1:
        work[0]()
    elif work:

        def run() -> None:
            for step in work:
                step()

        _in_transaction(con, run)
    return _Stored(list(blobs.values()), writes)


def _existing_keys(con: _Con, table: str, keys: set[str]) -> set[str]:
    rows = con.execute(_EXISTING_KEYS.format(table=table), [list(keys)]).fetchall()
    return {cast(str, row[0]) for row in rows}


def _insert_rows(con: _Con, table: str, columns: str, rows: Sequence[_Row]) -> None:
    """Plain inserts of rows: columnar ``unnest`` for many small rows, ``VALUES`` otherwise.

    Measured on DuckDB 2.0: 20 rows of 1 KiB take 1.6 ms by ``unnest`` and 2.3 ms by
    ``VALUES``, but one 1 MiB value takes 16 ms in a ``BLOB[]`` parameter and 4 ms in
    ``VALUES``.
    """
    payload = sum(len(row[_DATA_COLUMN[table]]) for row in rows)
    if len(rows) > 4 and payload <= _UNNEST_MAX_BYTES_PER_ROW * len(rows):
        width = len(rows[0])
        con.execute(_UNNEST_INSERT[table], [[row[i] for row in rows] for i in range(width)])
        return
    group = "(" + ", ".join("?" * len(rows[0])) + ")"
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        sql = f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([group] * len(chunk))  # noqa: S608
        con.execute(sql, [value for row in chunk for value in row])


def _head_and_exists(
    con: _Con, thread_id: str, namespace: str, checkpoint_id: str
) -> tuple[str | None, bool]:
    row = con.execute(
        "SELECT max(checkpoint_id), bool_or(checkpoint_id = ?) FROM ckpt_checkpoints "
        "WHERE thread_id = ? AND namespace = ?",
        [checkpoint_id, thread_id, namespace],
    ).fetchone()
    if row is None:
        return None, False
    return cast(str | None, row[0]), bool(row[1])


def _load_thread(con: _Con, thread_id: str) -> _Loaded:
    mirror = _Mirror()
    rows = con.execute(
        "SELECT namespace, checkpoint_id, parent_id, type, data, metadata, channels, versions, "
        "run_id FROM ckpt_checkpoints WHERE thread_id = ?",
        [thread_id],
    ).fetchall()
    for ns, cid, parent, type_, data, metadata, channels, versions, run_id in rows:
        rec = _Rec(
            cid,
            parent,
            Blob(type_, bytes(data)),
            metadata,
            dict(zip(channels, versions, strict=True)),
            run_id,
            _loads(metadata),
        )
        mirror.add_record(ns, rec)
    rows = con.execute(
        "SELECT namespace, checkpoint_id, task_id, task_path, idx, channel, type "
        "FROM ckpt_writes WHERE thread_id = ?",
        [thread_id],
    ).fetchall()
    for ns, cid, task_id, task_path, idx, channel, type_ in rows:
        mirror.writes.setdefault((ns, cid), {})[(task_id, idx)] = _WriteMeta(
            task_id, task_path, idx, channel, type_
        )
        mirror.size += _WRITE_META_SIZE
    rows = con.execute(
        "SELECT namespace, channel, version FROM ckpt_blobs WHERE thread_id = ?", [thread_id]
    ).fetchall()
    for ns, channel, version in rows:
        mirror.blobs.add((ns, channel, version))
        mirror.size += _BLOB_KEY_SIZE
    return _Loaded(mirror)


def _fetch_values(con: _Con, thread_id: str, keys: Sequence[_VKey]) -> dict[_VKey, Blob]:
    by_blob_key = {_blob_key(thread_id, k[2], k[3], k[4]): k for k in keys if k[0] == "b"}
    by_write_key = {_write_key(thread_id, k[2], k[3], k[4], k[5]): k for k in keys if k[0] == "w"}
    out: dict[_VKey, Blob] = {}
    for table, wanted in (("ckpt_blobs", by_blob_key), ("ckpt_writes", by_write_key)):
        if wanted:
            for key, blob in _values_by_key(con, table, list(wanted)).items():
                out[wanted[key]] = blob
    return out


def _values_by_key(con: _Con, table: str, keys: list[str]) -> dict[str, Blob]:
    """Values of blob or write rows by key (an index lookup: no other value is read)."""
    rows = con.execute(_SELECT_VALUES.format(table=table), [keys]).fetchall()
    return {cast(str, key): Blob(type_, bytes(data)) for key, type_, data in rows}


def _list_from_file(con: _Con, query: ListQuery) -> list[StoredCheckpoint]:
    """A list (or get) answered from the file: checkpoints, then their writes and blobs."""
    conditions: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("thread_id", query.thread_id),
        ("namespace", query.namespace),
        ("checkpoint_id", query.checkpoint_id),
    ):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if query.before is not None:
        conditions.append("checkpoint_id < ?")
        params.append(query.before)
    sql = f"SELECT {_CKPT_COLUMNS} FROM ckpt_checkpoints"  # noqa: S608 - constants only
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    sql += " ORDER BY checkpoint_id DESC, thread_id DESC, namespace DESC"
    if query.limit is not None and not query.metadata:
        sql += f" LIMIT {int(query.limit)}"
    rows = con.execute(sql, params).fetchall()
    rows = [row for row in rows if _metadata_matches(row[6], query.metadata)]
    if query.limit is not None:
        rows = rows[: query.limit]
    if not rows:
        return []
    write_rows = con.execute(
        _SELECT_WRITES_OF, [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]]
    ).fetchall()
    write_values = (
        _values_by_key(con, "ckpt_writes", [cast(str, r[0]) for r in write_rows])
        if write_rows
        else {}
    )
    writes: dict[tuple[str, str, str], list[WriteRecord]] = {}
    for key, t, ns, cid, task_id, idx, task_path, channel in write_rows:
        value = write_values.get(key)
        if value is not None:
            writes.setdefault((t, ns, cid), []).append(
                WriteRecord(task_id, task_path, idx, channel, value)
            )
    wanted = {
        _blob_key(r[0], r[1], c, v): (r[0], r[1], c, v)
        for r in rows
        for c, v in zip(r[7], r[8], strict=True)
    }
    blobs: dict[tuple[str, str, str, str], Blob] = {}
    if wanted:
        for key, blob in _values_by_key(con, "ckpt_blobs", list(wanted)).items():
            blobs[wanted[key]] = blob
    out: list[StoredCheckpoint] = []
    for t, ns, cid, parent, type_, data, metadata, channels, versions, run_id in rows:
        record = CheckpointRecord(
            thread_id=t,
            namespace=ns,
            checkpoint_id=cid,
            parent_id=parent,
            checkpoint=Blob(type_, bytes(data)),
            metadata=json.loads(metadata),
            channel_versions=dict(zip(channels, versions, strict=True)),
            run_id=run_id,
        )
        values = {
            c: blobs[(t, ns, c, v)]
            for c, v in zip(channels, versions, strict=True)
            if (t, ns, c, v) in blobs
        }
        found = sorted(writes.get((t, ns, cid), ()), key=lambda w: (w.task_path, w.task_id, w.idx))
        out.append(StoredCheckpoint(record, values, found))
    return out


def _deleted(con: _Con, statement: str, args: list[Any]) -> int:
    """Run a ``DELETE``; returns how many rows it deleted."""
    row = con.execute(statement, args).fetchone()
    return int(row[0]) if row is not None else 0


def _delete_threads(con: _Con, thread_ids: list[str]) -> int:
    """Delete whole threads; returns how many checkpoints they held."""

    def run() -> int:
        counts = [
            _deleted(
                con,
                f"DELETE FROM {table} WHERE thread_id IN (SELECT unnest(?::VARCHAR[]))",  # noqa: S608
                [thread_ids],
            )
            for table in _TABLES
        ]
        return counts[_TABLES.index("ckpt_checkpoints")]

    return _in_transaction(con, run)


def _delete_for_runs(con: _Con, run_ids: list[str]) -> None:
    def run() -> None:
        con.execute(_DELETE_RUN_WRITES, [run_ids])
        con.execute(_DELETE_RUN_CHECKPOINTS, [run_ids])

    _in_transaction(con, run)


def _copy_thread(con: _Con, source: str, target: str) -> None:
    if source == target:
        return

    def run() -> None:
        for statement in _COPY:
            con.execute(statement, {"source": source, "target": target})

    _in_transaction(con, run)


def _prune_keep_latest(con: _Con, thread_ids: list[str]) -> int:
    """Keep the newest checkpoint of each namespace; returns how many checkpoints went."""

    def run() -> int:
        for statement in _PRUNE_KEEP_LATEST:
            con.execute(statement, [thread_ids])
        deleted = _deleted(con, _PRUNE_CHECKPOINTS, [thread_ids])
        con.execute("DROP TABLE IF EXISTS ckpt_prune_keep")
        return deleted

    return _in_transaction(con, run)


def _expire(con: _Con, older_than: float) -> list[str]:
    def run() -> list[str]:
        rows = con.execute(_EXPIRED_THREADS, [older_than]).fetchall()
        threads = [cast(str, row[0]) for row in rows]
        if threads:
            for table in _TABLES:
                con.execute(
                    f"DELETE FROM {table} WHERE thread_id IN (SELECT unnest(?::VARCHAR[]))",  # noqa: S608
                    [threads],
                )
        return threads

    return _in_transaction(con, run)


def _file_size(con: _Con, path: str) -> int:
    if path == ":memory:":
        rows = con.execute(
            "SELECT coalesce(sum(octet_length(data)), 0) FROM ("
            "SELECT data FROM ckpt_checkpoints UNION ALL SELECT data FROM ckpt_blobs "
            "UNION ALL SELECT data FROM ckpt_writes)"
        ).fetchall()
        return int(rows[0][0])
    con.execute("CHECKPOINT")
    row = con.execute("SELECT block_size, used_blocks FROM pragma_database_size()").fetchone()
    size = int(row[0]) * int(row[1]) if row is not None else os.path.getsize(path)
    wal = path + ".wal"
    if os.path.exists(wal):
        size += os.path.getsize(wal)
    return size


# --- sharing one core per file ------------------------------------------------------------------

_CORES: dict[str, _Core] = {}
"""The open core of each file (by real path): every store on the file in this process uses it."""
_CLOSING: dict[str, _Core] = {}
"""Cores whose last store left, until their connection is closed."""
_CORES_LOCK = threading.Lock()


def _key(path: str) -> str:
    return path if path == ":memory:" else os.path.realpath(path)


def _acquire(path: str, cache_bytes: int) -> _Core:
    with _CORES_LOCK:
        key = _key(path)
        core = _CORES.get(key)
        if core is None:
            closing = _CLOSING.get(key)
            after = closing.closed if closing is not None else None
            core = _CORES[key] = _Core(path, cache_bytes, after)
        core.users += 1
        return core


def _release(core: _Core) -> bool:
    """Drop one user; True when it was the last (the caller then closes the core)."""
    with _CORES_LOCK:
        core.users -= 1
        if core.users > 0:
            return False
        key = _key(core.path)
        if _CORES.get(key) is core:
            del _CORES[key]
        _CLOSING[key] = core
    core.closed.add_done_callback(lambda _: _closed(key, core))
    return True


def _closed(key: str, core: _Core) -> None:
    with _CORES_LOCK:
        if _CLOSING.get(key) is core:
            del _CLOSING[key]


def _run_sync(steps: _Steps[_T]) -> _T:
    """Drive a core operation in the calling thread, blocking on the worker's futures."""
    try:
        future = next(steps)
        while True:
            try:
                result = future.result()
            except BaseException as exc:  # noqa: BLE001 - handed to the operation
                future = steps.throw(exc)
            else:
                future = steps.send(result)
    except StopIteration as stop:
        return cast(_T, stop.value)


async def _run_async(steps: _Steps[_T]) -> _T:
    """Drive a core operation on the event loop (no thread hop when the cache answers)."""
    try:
        future = next(steps)
        while True:
            try:
                result = await asyncio.wrap_future(future)
            except BaseException as exc:  # noqa: BLE001 - handed to the operation
                future = steps.throw(exc)
            else:
                future = steps.send(result)
    except StopIteration as stop:
        return cast(_T, stop.value)


class _Base:
    """What both stores share: the path, the options and the core while open."""

    name: str = "duckdb"

    def __init__(
        self, path: str | Path, *, cache_bytes: int = CACHE_BYTES, durable: bool = False
    ) -> None:
        if cache_bytes < 0:
            raise CheckpointError(
                f"duckdb checkpoint store: cache_bytes must be >= 0, not {cache_bytes}"
            )
        self._path = str(path)
        self._location = checkpoint_store_url(f"duckdb://{self._path}")
        self._cache_bytes = cache_bytes
        self._durable = durable
        self._core: _Core | None = None

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def location(self) -> str:
        """Where the checkpoints live: ``duckdb:///absolute/path.duckdb``."""
        return self._location

    @property
    def reopens(self) -> int:
        """Times the file was opened again after DuckDB gave up on the database (0 if closed)."""
        core = self._core
        return 0 if core is None else core.reopens

    def _open_core(self) -> _Core:
        if self._core is not None:
            raise CheckpointError(f"duckdb checkpoint store at {self._path} is already open")
        return _acquire(self._path, self._cache_bytes)

    def _opened(self, core: _Core, ok: bool) -> None:
        if ok:
            self._core = core
        elif _release(core):
            _run_sync(core.close_steps())

    def _c(self) -> _Core:
        core = self._core
        if core is None:
            raise CheckpointError(f"duckdb checkpoint store at {self._path} is not open")
        return core


class SyncDuckDBCheckpointStore(_Base):
    """The DuckDB checkpoint store with synchronous methods (same semantics as the async one).

    Use it as a context manager (or call :meth:`open` and :meth:`close`). Calls answered from
    the cache run in the calling thread; the others wait for the file's worker thread.

    Args:
        path: The database file (created with its folder on first use).
        cache_bytes: Budget of each cache (thread mirrors, values), in bytes.
        durable: Make ``put``/``put_writes`` wait until their transaction is committed.
    """

    def open(self) -> SyncDuckDBCheckpointStore:
        """Open the file (applying pending migrations) and return the store.

        Raises:
            CheckpointError: The file cannot be opened (another process holds it, not a DuckDB
                file, a newer schema…).
        """
        core = self._open_core()
        ok = False
        try:
            _run_sync(core.open_steps())
            ok = True
        finally:
            self._opened(core, ok)
        return self

    def close(self) -> None:
        """Commit queued writes and close (the file closes with its last store)."""
        core, self._core = self._core, None
        if core is not None and _release(core):
            _run_sync(core.close_steps())

    def __enter__(self) -> SyncDuckDBCheckpointStore:
        """Open the store (see :meth:`open`)."""
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        """Close the store (see :meth:`close`)."""
        self.close()

    def flush(self) -> None:
        """Wait until every queued write is committed to the file."""
        _run_sync(self._c().flush_steps())

    def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """Store a checkpoint and its new channel values (see ``CheckpointStore.put``)."""
        _run_sync(self._c().put_steps(record, blobs, extends, check_extends, self._durable))

    def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Store pending writes for a checkpoint (see ``CheckpointStore.put_writes``)."""
        _run_sync(
            self._c().put_writes_steps(thread_id, namespace, checkpoint_id, writes, self._durable)
        )

    def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """The given checkpoint, or the newest of the namespace when ``checkpoint_id`` is None.

        The values of ``skip_channels`` are left out (read from memory or the file anyway).
        """
        core = self._c()
        hit, found = core.get_cached(thread_id, namespace, checkpoint_id)
        if not hit:
            found = _run_sync(core.get_steps(thread_id, namespace, checkpoint_id))
        return without_channels(found, skip_channels) if found is not None else None

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread (all namespaces)."""
        _run_sync(self._c().delete_thread_steps(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs, and their writes."""
        _run_sync(self._c().delete_for_runs_steps(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another thread id."""
        _run_sync(self._c().copy_thread_steps(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> None:
        """Keep only the newest checkpoint per namespace (or none) of these threads."""
        _run_sync(self._c().prune_steps(thread_ids, keep_latest))

    def expire(self, older_than: float) -> int:
        """Delete threads whose newest checkpoint was put before ``older_than`` (Unix s).

        Returns:
            The number of threads deleted.
        """
        return _run_sync(self._c().expire_steps(older_than))

    def size_bytes(self) -> int:
        """Bytes of the file's used blocks after a ``CHECKPOINT`` (see the module docstring)."""
        return _run_sync(self._c().size_steps())

    def list(self, query: ListQuery) -> Iterator[StoredCheckpoint]:
        """Checkpoints matching the query, newest first (by checkpoint id)."""
        core = self._c()
        hit, found = core.list_cached(query)
        return iter(found if hit else _run_sync(core.list_steps(query)))


class DuckDBCheckpointStore(_Base, CheckpointStore):
    """The async checkpoint store on a DuckDB file (see the module docstring for the design).

    Args:
        path: The database file (created with its folder on first use).
        cache_bytes: Budget of each cache (thread mirrors, values), in bytes.
        durable: Make ``put``/``put_writes`` wait until their transaction is committed.
    """

    name: str = "duckdb"

    async def __aenter__(self) -> DuckDBCheckpointStore:
        """Open the file (applying pending migrations) and return the store.

        Raises:
            CheckpointError: The file cannot be opened (another process holds it, not a DuckDB
                file, a newer schema…).
        """
        core = self._open_core()
        ok = False
        try:
            await _run_async(core.open_steps())
            ok = True
        finally:
            if not ok:
                await asyncio.to_thread(self._opened, core, False)
            else:
                self._opened(core, True)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Commit queued writes and close (the file closes with its last store)."""
        core, self._core = self._core, None
        if core is not None and _release(core):
            await _run_async(core.close_steps())

    async def flush(self) -> None:
        """Wait until every queued write is committed to the file."""
        await _run_async(self._c().flush_steps())

    async def put(
        self,
        record: CheckpointRecord,
        blobs: Mapping[tuple[str, str], Blob],
        *,
        extends: str | None = None,
        check_extends: bool = False,
    ) -> None:
        """Store a checkpoint and its new channel values (see ``CheckpointStore.put``)."""
        await _run_async(self._c().put_steps(record, blobs, extends, check_extends, self._durable))

    async def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Store pending writes for a checkpoint (see ``CheckpointStore.put_writes``)."""
        await _run_async(
            self._c().put_writes_steps(thread_id, namespace, checkpoint_id, writes, self._durable)
        )

    async def get(
        self,
        thread_id: str,
        namespace: str,
        checkpoint_id: str | None = None,
        *,
        skip_channels: Collection[str] = (),
    ) -> StoredCheckpoint | None:
        """The given checkpoint, or the newest of the namespace when ``checkpoint_id`` is None.

        The values of ``skip_channels`` are left out (read from memory or the file anyway).
        """
        core = self._c()
        hit, found = core.get_cached(thread_id, namespace, checkpoint_id)
        if not hit:
            found = await _run_async(core.get_steps(thread_id, namespace, checkpoint_id))
        return without_channels(found, skip_channels) if found is not None else None

    async def delete_thread(self, thread_id: str) -> int:
        """Delete every checkpoint, blob and write of a thread (all namespaces).

        Returns:
            The number of checkpoints deleted.
        """
        return await _run_async(self._c().delete_thread_steps(thread_id))

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs, and their writes."""
        await _run_async(self._c().delete_for_runs_steps(run_ids))

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another thread id."""
        await _run_async(self._c().copy_thread_steps(source_thread_id, target_thread_id))

    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> int:
        """Keep only the newest checkpoint per namespace (or none) of these threads.

        Returns:
            The number of checkpoints deleted.
        """
        return await _run_async(self._c().prune_steps(thread_ids, keep_latest))

    async def expire(self, older_than: float) -> int:
        """Delete threads whose newest checkpoint was put before ``older_than`` (Unix s).

        Returns:
            The number of threads deleted.
        """
        return await _run_async(self._c().expire_steps(older_than))

    async def size_bytes(self) -> int:
        """Bytes of the file's used blocks after a ``CHECKPOINT`` (see the module docstring)."""
        return await _run_async(self._c().size_steps())

    async def list(self, query: ListQuery) -> AsyncIterator[StoredCheckpoint]:
        """Checkpoints matching the query, newest first (by checkpoint id)."""
        core = self._c()
        hit, found = core.list_cached(query)
        for item in found if hit else await _run_async(core.list_steps(query)):
            yield item
