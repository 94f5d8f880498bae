"""The PostgreSQL checkpoint store: :class:`PostgresCheckpointStore`, on an asyncpg pool.

Tables (in the store's schema, created and kept current by versioned migrations when the store
opens; see :mod:`~agentmesh.checkpoint.store._postgres_migrations`):

* ``checkpoints``: one row per checkpoint, keyed ``(thread_id, ns, checkpoint_id)``; the
  channel versions as two parallel arrays; the newest checkpoint of a namespace is the last
  entry of the primary key for its ``(thread_id, ns)`` (text columns use the ``"C"``
  collation, so ids compare as Python strings do).
* ``blobs``: one row per ``(thread_id, ns, channel, version)``, written once.
* ``writes``: pending writes keyed ``(thread_id, ns, checkpoint_id, task_id, idx)``.

Payload columns are stored ``EXTERNAL`` (out of line, no pglz): the savers compress already.

Speed: a put is one call of a server-side function (new blobs, the checkpoint and the
compare-and-set in one statement, one round trip); a get is one statement returning the
checkpoint with its values and writes as arrays; statements are prepared once per connection
(asyncpg's cache), a connection goes back to the pool without asyncpg's reset query (the
store keeps no session state), and a call made while no other is under way keeps its
connection for the next instead of handing it back (the pool's acquire and release cost about
40 µs), so each call costs one round trip. A put also waits for its
commit to reach the disk, like any durable write; ``synchronous_commit=False`` trades that wait
for the risk of losing the last puts if the *server* crashes.

Concurrent writers of one thread and namespace take turns on a transaction advisory lock inside
the put function, which makes ``check_extends`` an atomic compare-and-set across processes.

Every asyncpg or socket failure is raised as :class:`~agentmesh.core.errors.CheckpointError`
("postgres checkpoint store at host:port: …"), never with the DSN's credentials. A store is
used from the event loop it was opened in.

Example:
    >>> PostgresCheckpointStore("postgresql://app:secret@db.internal:6543/app").address
    'db.internal:6543'
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar
from urllib.parse import urlsplit

import asyncpg

from agentmesh.checkpoint.store._postgres_migrations import apply_migrations
from agentmesh.checkpoint.store._postgres_sql import ListCursor, Statements, list_statement
from agentmesh.checkpoint.store._url_options import with_query_option
from agentmesh.checkpoint.store.base import (
    DEFAULT_COMMAND_TIMEOUT_SECONDS,
    Blob,
    CheckpointRecord,
    CheckpointStore,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)
from agentmesh.core.connection_urls import postgres_dsn_problem
from agentmesh.core.errors import CheckpointConflictError, CheckpointError, ConfigError
from agentmesh.core.log import get_logger
from agentmesh.core.socket_errors import socket_reason
from agentmesh.core.urls import checkpoint_store_url

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

__all__ = ["DEFAULT_SCHEMA", "PostgresCheckpointStore"]

DEFAULT_SCHEMA: Final = "agentmesh"
"""The schema a store keeps its tables in unless told otherwise (``?schema=`` in its URL)."""

_log = get_logger(__name__)

_T = TypeVar("_T")
_Con: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
_SCHEMA_NAME: Final = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PAGE: Final = 100
"""Rows read per statement while listing."""
_SERVER_SETTINGS: Final = {
    "application_name": "agentmesh-checkpoint",
    "jit": "off",
    # every statement is a key lookup whose plan does not depend on the values: plan once per
    # connection (generic plans) instead of planning each of the first calls again
    "plan_cache_mode": "force_generic_plan",
}
"""Session settings of the store's connections (PostgreSQL 12 or later)."""


class PostgresCheckpointStore(CheckpointStore):
    """A :class:`~agentmesh.checkpoint.store.base.CheckpointStore` on PostgreSQL.

    ``async with store:`` creates the pool and applies pending migrations (the first call does
    it too when the store was not entered); leaving closes the pool.

    Args:
        dsn: ``postgresql://user@host:port/database``; a password is better given in
            ``PGPASSWORD`` than in the URL (it never appears in messages either way).
        schema: Schema holding the tables (created when missing), a lower-case identifier;
            a URL names it as ``?schema=`` (see :func:`~agentmesh.checkpoint.store.open_store`).
        min_size: Connections the pool keeps open.
        max_size: Most connections the pool opens.
        connect_timeout_seconds: How long to wait for PostgreSQL to accept a connection.
        command_timeout_seconds: How long one call may wait for PostgreSQL's answer before it
            fails with a :class:`CheckpointError` (``None``: for ever). A server that stops
            answering without closing the connection (a network partition, a fail-over that
            leaves the old primary unreachable) would otherwise hold the run for as long as
            TCP takes to give up, often a quarter of an hour.
        synchronous_commit: ``True`` (the default): a put returns once its commit is flushed
            to disk, as with any PostgreSQL write. ``False``: the store's sessions run with
            ``synchronous_commit = off`` and a put returns without waiting for the flush (on a
            busy disk, most of a put's latency); a crash of the *server* may then lose the
            puts of its last moments (about 3 x ``wal_writer_delay``) but never corrupts or
            half-writes anything, and a resumed run restarts from the newest checkpoint that
            survived.

    Raises:
        ConfigError: ``dsn`` is not a DSN asyncpg can use (another scheme than
            ``postgresql://`` or ``postgres://``, a port that is not a number…).
        CheckpointError: ``schema`` is not a plain lower-case identifier, or the pool sizes are
            inconsistent.
    """

    name: str = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout_seconds: float = 10.0,
        command_timeout_seconds: float | None = DEFAULT_COMMAND_TIMEOUT_SECONDS,
        synchronous_commit: bool = True,
    ) -> None:
        problem = postgres_dsn_problem(dsn)
        if problem is not None:  # asyncpg would say so only when connecting
            raise ConfigError(f"postgres checkpoint store: invalid DSN: {problem}")
        if _SCHEMA_NAME.match(schema) is None:
            raise CheckpointError(
                f"postgres checkpoint store: schema must be a lower-case SQL identifier, "
                f"got {schema!r}"
            )
        if not 0 <= min_size <= max_size or max_size < 1:
            raise CheckpointError(
                "postgres checkpoint store: pool sizes must satisfy 0 <= min_size <= max_size "
                f"and max_size >= 1, got {min_size} and {max_size}"
            )
        self._dsn = dsn
        self._location = checkpoint_store_url(dsn)  # read at every LangGraph step
        if schema != DEFAULT_SCHEMA:  # the URL open_store reads back as this store
            self._location = with_query_option(self._location, "schema", schema)
        self._schema = schema
        self._min_size = min_size
        self._max_size = max_size
        if command_timeout_seconds is not None and command_timeout_seconds <= 0:
            raise CheckpointError(
                "postgres checkpoint store: command_timeout_seconds must be above 0 (or None "
                f"for no limit), got {command_timeout_seconds}"
            )
        self._timeout = connect_timeout_seconds
        self._command_timeout = command_timeout_seconds
        self._settings = dict(_SERVER_SETTINGS)
        if not synchronous_commit:
            self._settings["synchronous_commit"] = "off"
        self._address = _server_address(dsn)
        self._secrets = _secrets(dsn)
        self._sql = Statements.for_schema(schema)
        self._pool: asyncpg.Pool | None = None
        self._warm: _Con | None = None  # see _on_connection
        self._callers = 0
        self._opening = asyncio.Lock()
        self._closed = False
        self._applied: tuple[int, ...] = ()

    @property
    def address(self) -> str:
        """``host:port`` of the server (no credentials)."""
        return self._address

    @property
    def location(self) -> str:
        """Where the checkpoints live: the store's DSN, password masked.

        A schema other than the default is named as ``?schema=`` (what :func:`open_store`
        reads), so the URL opens this very store again.
        """
        return self._location

    @property
    def schema(self) -> str:
        """The schema holding the tables."""
        return self._schema

    @property
    def migrations_applied(self) -> tuple[int, ...]:
        """The migration versions this store applied when it opened (empty: none were due)."""
        return self._applied

    async def __aenter__(self) -> PostgresCheckpointStore:
        """Create the pool and apply pending migrations; returns the store.

        Raises:
            CheckpointError: PostgreSQL cannot be reached, refuses the login, or a migration
                fails.
        """
        await self._ready()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the pool (waiting for calls in progress); later calls raise."""
        await self.close()

    async def close(self) -> None:
        """Close the pool's connections; closing twice is harmless."""
        self._closed = True
        async with self._opening:
            pool, self._pool = self._pool, None
            warm, self._warm = self._warm, None
        if pool is not None:
            try:
                if warm is not None:
                    await pool.release(warm)
                await pool.close()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                _log.warning("checkpoint_pool_close_failed", reason=self._scrub(str(exc)))

    # --- the protocol ---------------------------------------------------------------------

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
            CheckpointConflictError: ``check_extends`` and the newest checkpoint of the
                namespace is not ``extends``.
            CheckpointError: PostgreSQL failed, or the metadata is not JSON-able.
        """
        args = (
            record.thread_id,
            record.namespace,
            record.checkpoint_id,
            record.parent_id,
            record.checkpoint.type,
            record.checkpoint.data,
            _metadata_json(record.metadata, self._where(record.thread_id)),
            [*record.channel_versions.keys()],
            [*record.channel_versions.values()],
            record.run_id,
            [pair[0] for pair in blobs],
            [pair[1] for pair in blobs],
            [blob.type for blob in blobs.values()],
            [blob.data for blob in blobs.values()],
            check_extends,
            extends,
        )
        row = await self._run(
            lambda con: con.fetchrow(self._sql.put, *args), f"put thread {record.thread_id!r}"
        )
        if row is None or not row[0]:
            newest: str | None = None if row is None else row[1]
            raise CheckpointConflictError(record.thread_id, record.namespace, extends, newest)

    async def put_writes(
        self, thread_id: str, namespace: str, checkpoint_id: str, writes: Sequence[WriteRecord]
    ) -> None:
        """Store pending writes atomically (see :meth:`CheckpointStore.put_writes`)."""
        unique: dict[tuple[str, int], WriteRecord] = {}
        for write in writes:  # one row per key: the first, or the last for special writes
            key = (write.task_id, write.idx)
            if write.idx < 0 or key not in unique:
                unique[key] = write
        if not unique:
            await self._ready()
            return
        rows = unique.values()
        args = (
            thread_id,
            namespace,
            checkpoint_id,
            [w.task_id for w in rows],
            [w.idx for w in rows],
            [w.task_path for w in rows],
            [w.channel for w in rows],
            [w.value.type for w in rows],
            [w.value.data for w in rows],
        )
        await self._run(
            lambda con: con.execute(self._sql.put_writes, *args),
            f"put writes of thread {thread_id!r}",
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

        The values of ``skip_channels`` are not read.
        """
        skip = list(skip_channels)
        if checkpoint_id is None:
            statement, args = self._sql.get_newest, (thread_id, namespace, skip)
        else:
            statement, args = self._sql.get_one, (thread_id, namespace, checkpoint_id, skip)
        row = await self._run(
            lambda con: con.fetchrow(statement, *args), f"get thread {thread_id!r}"
        )
        return None if row is None else _stored(row)

    async def list(self, query: ListQuery) -> AsyncIterator[StoredCheckpoint]:
        """Checkpoints matching the query, newest first (by checkpoint id, then thread, ns).

        Rows are read a page at a time; no connection is held between pages, so the caller
        may use the store while iterating.
        """
        remaining = query.limit
        after: ListCursor | None = None
        what = "list " + (f"thread {query.thread_id!r}" if query.thread_id else "all threads")
        while remaining is None or remaining > 0:
            page = _PAGE if remaining is None else min(_PAGE, remaining)
            try:
                statement, args = list_statement(self._schema, query, after, page)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(
                    f"postgres checkpoint store at {self._address}: {what}: the metadata "
                    f"filter is not JSON-able: {exc}"
                ) from exc
            rows = await self._fetch(statement, args, what)
            shared: dict[tuple[str, str, str, str], Blob] = {}  # values sent once a page
            for row in rows:
                yield _stored(row, shared)
            if len(rows) < page:
                return
            if remaining is not None:
                remaining -= len(rows)
            last = rows[-1]
            after = ListCursor(last[2], last[0], last[1])

    async def delete_thread(self, thread_id: str) -> int:
        """Delete every checkpoint, blob and write of a thread (all namespaces).

        Returns:
            The number of checkpoints deleted.
        """
        count = await self._run(
            lambda con: con.fetchval(self._sql.delete_threads, [thread_id]),
            f"delete thread {thread_id!r}",
        )
        return int(count or 0)

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints written by these runs, and their writes."""
        runs = [*dict.fromkeys(run_ids)]
        if not runs:
            await self._ready()
            return
        await self._run(
            lambda con: con.execute(self._sql.delete_for_runs, runs), "delete checkpoints of runs"
        )

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, blob and write of one thread to another thread id.

        What the target holds already (same checkpoint, blob or write keys) is kept.
        """
        await self._run(
            lambda con: con.execute(self._sql.copy_thread, source_thread_id, target_thread_id),
            f"copy thread {source_thread_id!r} to {target_thread_id!r}",
        )

    async def prune(self, thread_ids: Sequence[str], *, keep_latest: bool = True) -> int:
        """Keep only the newest checkpoint per namespace (or none) of these threads.

        Returns:
            The number of checkpoints deleted.
        """
        threads = [*dict.fromkeys(thread_ids)]
        if not threads:
            await self._ready()
            return 0
        statement = self._sql.prune if keep_latest else self._sql.delete_threads
        count = await self._run(lambda con: con.fetchval(statement, threads), "prune threads")
        return int(count or 0)

    async def expire(self, older_than: float) -> int:
        """Delete threads whose newest checkpoint was written before ``older_than`` (Unix s).

        Returns:
            The number of threads deleted.
        """
        count = await self._run(
            lambda con: con.fetchval(self._sql.expire, float(older_than)), "expire threads"
        )
        return int(count or 0)

    async def size_bytes(self) -> int:
        """Sum of ``pg_total_relation_size`` of the store's tables (indexes and TOAST too)."""
        size = await self._run(
            lambda con: con.fetchval(self._sql.size, self._schema), "measure size"
        )
        return int(size or 0)

    # --- the pool ---------------------------------------------------------------------------

    async def _fetch(
        self, statement: str, args: Sequence[Any], what: str
    ) -> Sequence[asyncpg.Record]:
        return await self._run(lambda con: con.fetch(statement, *args), what)

    def _where(self, thread_id: str) -> str:
        return f"postgres checkpoint store at {self._address}: thread {thread_id!r}"

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _error(self, exc: BaseException, what: str) -> CheckpointError:
        return CheckpointError(
            f"postgres checkpoint store at {self._address}: {what}: {self._scrub(_cause(exc))}"
        )

    def _check(self) -> None:
        if self._closed:
            raise CheckpointError(f"postgres checkpoint store at {self._address} is closed")

    async def _ready(self) -> asyncpg.Pool:
        self._check()
        pool = self._pool
        if pool is not None:
            return pool
        async with self._opening:
            self._check()
            if self._pool is None:
                self._pool = await self._connect()
            return self._pool

    async def _connect(self) -> asyncpg.Pool:
        try:
            admin = await asyncpg.connect(
                self._dsn,
                timeout=self._timeout,
                server_settings={"application_name": "agentmesh-checkpoint-migrations"},
            )
            try:
                # no time limit: another process may hold the lock while it migrates
                applied = await apply_migrations(admin, self._schema)
            finally:
                await admin.close()
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=self._min_size,
                max_size=self._max_size,
                timeout=self._timeout,
                command_timeout=self._command_timeout,
                server_settings=self._settings,
                reset=_no_reset,
            )
        except Exception as exc:
            raise self._error(exc, "cannot open") from exc
        self._applied = tuple(applied)
        _log.info(
            "checkpoint_store_open",
            backend="postgres",
            address=self._address,
            schema=self._schema,
            migrations_applied=applied,
        )
        return pool

    async def _run(self, work: Callable[[_Con], Awaitable[_T]], what: str) -> _T:
        """Run ``work`` on a pooled connection; once more on a fresh one if the first died.

        Every call is idempotent (inserts keep or replace by key, deletes, reads), so trying
        again after a lost connection cannot store anything twice.
        """
        pool = await self._ready()
        self._callers += 1
        try:
            for attempt in (1, 2):
                try:
                    return await self._on_connection(pool, work)
                except CheckpointError:
                    raise
                except Exception as exc:
                    if attempt == 1 and _connection_lost(exc) and not self._closed:
                        _log.info("checkpoint_connection_lost", reason=self._scrub(_cause(exc)))
                        continue
                    raise self._error(exc, what) from exc
        finally:
            self._callers -= 1
        raise AssertionError("unreachable")  # pragma: no cover

    async def _on_connection(self, pool: asyncpg.Pool, work: Callable[[_Con], Awaitable[_T]]) -> _T:
        """Run ``work`` on the warm connection when it is free, else on one from the pool.

        A call made while no other is under way keeps its connection *warm* afterwards instead
        of handing it back: the pool's acquire and release cost more than a local round trip's
        worth of event loop turns (about 40 µs, twice that on a busy machine). When calls
        overlap, connections go back to the pool, so a caller waiting there is never starved
        by the warm one; a failed call's connection always goes back (the pool replaces it if
        it died).
        """
        con: _Con | None = self._warm
        self._warm = None
        if con is not None and not _open(con):
            await pool.release(con)  # hands a dead connection's slot back (a no-op if done)
            con = None
        if con is None:
            con = await pool.acquire()
        try:
            result = await work(con)
        except BaseException:
            await pool.release(con)
            raise
        if self._callers == 1 and self._warm is None and not self._closed:
            self._warm = con
        else:
            await pool.release(con)
        return result


async def _no_reset(con: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: the store leaves no session state behind.

    (asyncpg still rolls back a transaction left open before calling this.)
    """
    del con


def _open(con: _Con) -> bool:
    """Whether a kept connection can still be used (asyncpg detaches one that died)."""
    try:
        return not con.is_closed()
    except asyncpg.InterfaceError:  # detached: the pool took it back when it closed
        return False


def _connection_lost(exc: BaseException) -> bool:
    """Whether a failure means the connection died (so the call may be tried again)."""
    if isinstance(exc, asyncpg.InterfaceError):
        # "…connection is closed", or "…released back to the pool": a kept connection that
        # died mid-call is taken back by asyncpg itself
        return "closed" in str(exc) or "released back to the pool" in str(exc)
    return isinstance(
        exc,
        ConnectionError
        | asyncpg.PostgresConnectionError
        | asyncpg.AdminShutdownError
        | asyncpg.CannotConnectNowError,
    )


def _server_address(dsn: str) -> str:
    """``host:port`` of a DSN, without user or password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname
        port = parts.port or 5432
    except ValueError:
        return "the configured server"
    return f"{host}:{port}" if host else "the configured server"


def _secrets(dsn: str) -> tuple[str, ...]:
    """The parts of a DSN that must not appear in messages: its user info and password."""
    try:
        parts = urlsplit(dsn)
        found = [parts.password or ""]
        if "@" in parts.netloc:
            found.insert(0, parts.netloc.rsplit("@", 1)[0])
    except ValueError:
        return (dsn,)
    return tuple(s for s in found if s)


def _cause(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return socket_reason(exc)
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(exc, asyncpg.PostgresError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _metadata_json(metadata: Mapping[str, Any], where: str) -> str:
    """Metadata as JSON for a ``jsonb`` column, which cannot hold NUL characters: dropped."""
    try:
        text = json.dumps(dict(metadata), separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: metadata is not JSON-able: {exc}") from exc
    if "\\u0000" in text:
        text = json.dumps(_without_nul(json.loads(text)), separators=(",", ":"))
    return text


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        items: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
        return {k.replace("\x00", ""): _without_nul(v) for k, v in items.items()}
    if isinstance(value, list):
        entries: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
        return [_without_nul(v) for v in entries]
    return value


def _stored(
    row: asyncpg.Record, shared: dict[tuple[str, str, str, str], Blob] | None = None
) -> StoredCheckpoint:
    """A read row (columns :data:`~._postgres_sql.READ_COLUMNS`) as a stored checkpoint.

    ``shared`` holds the values earlier rows of a listing's page carried, by thread,
    namespace, channel and version: a row gets a NULL for a value an earlier row sent.
    """
    record = CheckpointRecord(
        thread_id=row[0],
        namespace=row[1],
        checkpoint_id=row[2],
        parent_id=row[3],
        checkpoint=Blob(row[4], row[5]),
        metadata=json.loads(row[6]),
        channel_versions=dict(zip(row[7], row[8], strict=True)),
        run_id=row[9],
    )
    values: dict[str, Blob] = {}
    if row[10] is not None:
        versions = record.channel_versions
        if shared is None:
            shared = {}
        for channel, type_, data in zip(row[10], row[11], row[12], strict=True):
            key = (record.thread_id, record.namespace, channel, versions[channel])
            if data is not None:
                values[channel] = shared[key] = Blob(type_, data)
            else:
                values[channel] = shared[key]
    writes: tuple[WriteRecord, ...] = ()
    if row[13] is not None:
        writes = tuple(
            sorted(
                (
                    WriteRecord(task_id, task_path, idx, channel, Blob(type_, data))
                    for task_id, task_path, idx, channel, type_, data in zip(
                        row[13], row[14], row[15], row[16], row[17], row[18], strict=True
                    )
                ),
                key=lambda w: (w.task_path, w.task_id, w.idx),
            )
        )
    return StoredCheckpoint(record=record, values=values, writes=writes)
