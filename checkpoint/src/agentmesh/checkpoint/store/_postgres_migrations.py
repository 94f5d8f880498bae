"""Versioned migrations of the PostgreSQL checkpoint store, applied when a store opens.

The table ``checkpoint_migrations`` (in the store's schema) records each version applied.
Opening a store first reads that table; when every version is there (the usual case) nothing
else happens: no lock, no DDL. Otherwise the opener takes a session advisory lock derived from
the schema's name, so that processes starting together migrate once: the first applies, the
others find the versions recorded when they get the lock.

The lock is taken with ``pg_try_advisory_lock`` in a polling loop, not with the blocking
``pg_advisory_lock``: a session blocked in a statement holds a snapshot, and
``CREATE INDEX CONCURRENTLY`` in the migrating session waits for every older snapshot to go,
so a blocked waiter and the index build would wait for each other.

Each migration is a :class:`Migration`: indexes built with ``CREATE INDEX CONCURRENTLY`` (which
cannot run in a transaction; they do not block writes, so a live database keeps serving),
then statements run in one transaction together with the row recording the version, so a
failed migration leaves nothing half done. An index build interrupted earlier leaves an
invalid index, which is dropped and built again. On a fresh schema (the first migration
applied by the same call) nothing serves the new tables yet, so their indexes are built in the
migration's transaction without ``CONCURRENTLY``, which is quicker. Transactional DDL runs
with a short ``lock_timeout`` and is tried again a few times, so a migration waiting for a
table lock does not queue the live reads and writes behind it for long.

Migrations are additive (new tables, columns with defaults, indexes, functions under new
names), so a process running an older version keeps working on a schema migrated further; a
process that finds versions it does not know logs it and carries on.

Example:
    >>> [(m.version, m.name) for m in MIGRATIONS]
    [(1, 'initial'), (2, 'retention_indexes')]
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import asyncpg

from agentmesh.core.log import get_logger

__all__ = [
    "MIGRATIONS",
    "PUT_LOCK_CLASS",
    "ConcurrentIndex",
    "Migration",
    "advisory_lock_key",
    "apply_migrations",
]

_log = get_logger(__name__)

PUT_LOCK_CLASS: Final = 0x616D636B
"""First key of the transaction advisory locks that serialise puts of a thread and namespace
(``pg_advisory_xact_lock(PUT_LOCK_CLASS, hashtext(thread || ns))``): ``'amck'``."""

_SCHEMA: Final = "__SCHEMA__"
"""Placeholder replaced by the quoted schema name in every statement below."""

_LOCK_TIMEOUT: Final = "3s"
_DDL_ATTEMPTS: Final = 5
_POLL_FIRST_SECONDS: Final = 0.02
_POLL_MAX_SECONDS: Final = 0.5


@dataclass(frozen=True, slots=True)
class ConcurrentIndex:
    """An index built with ``CREATE INDEX CONCURRENTLY`` (outside any transaction).

    Attributes:
        name: The index's name (in the store's schema).
        definition: What follows ``CREATE INDEX CONCURRENTLY IF NOT EXISTS <name>``, with
            ``__SCHEMA__`` for the quoted schema: ``ON __SCHEMA__.table (columns)``.
    """

    name: str
    definition: str


@dataclass(frozen=True, slots=True)
class Migration:
    """One version of the schema.

    Attributes:
        version: Its number, 1, 2, 3… without gaps.
        name: A short name, recorded with the version.
        indexes: Indexes built concurrently first, each on its own.
        sql: Statements run in one transaction afterwards, with ``__SCHEMA__`` for the quoted
            schema; empty when the migration only builds indexes.
    """

    version: int
    name: str
    indexes: tuple[ConcurrentIndex, ...] = ()
    sql: str = ""


_INITIAL: Final = """
CREATE TABLE __SCHEMA__.checkpoints (
    thread_id text COLLATE "C" NOT NULL,
    ns text COLLATE "C" NOT NULL,
    checkpoint_id text COLLATE "C" NOT NULL,
    parent_id text COLLATE "C",
    type text NOT NULL,
    checkpoint bytea NOT NULL,
    metadata jsonb NOT NULL,
    channels text[] COLLATE "C" NOT NULL,
    versions text[] COLLATE "C" NOT NULL,
    run_id text,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, ns, checkpoint_id)
);
CREATE TABLE __SCHEMA__.blobs (
    thread_id text COLLATE "C" NOT NULL,
    ns text COLLATE "C" NOT NULL,
    channel text COLLATE "C" NOT NULL,
    version text COLLATE "C" NOT NULL,
    type text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (thread_id, ns, channel, version)
);
CREATE TABLE __SCHEMA__.writes (
    thread_id text COLLATE "C" NOT NULL,
    ns text COLLATE "C" NOT NULL,
    checkpoint_id text COLLATE "C" NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    idx integer NOT NULL,
    task_path text COLLATE "C" NOT NULL,
    channel text NOT NULL,
    type text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (thread_id, ns, checkpoint_id, task_id, idx)
);
-- payloads arrive compressed (zstd, by the savers): store them out of line without pglz
ALTER TABLE __SCHEMA__.checkpoints ALTER COLUMN checkpoint SET STORAGE EXTERNAL;
ALTER TABLE __SCHEMA__.blobs ALTER COLUMN data SET STORAGE EXTERNAL;
ALTER TABLE __SCHEMA__.writes ALTER COLUMN data SET STORAGE EXTERNAL;

-- One round trip per put: new blobs and the checkpoint in one call, with the compare-and-set
-- against the newest checkpoint of the thread and namespace. Puts of one (thread, namespace)
-- take turns on a transaction advisory lock; each statement below runs after it with a fresh
-- snapshot (read committed), so the newest id it reads is the committed one.
CREATE FUNCTION __SCHEMA__.checkpoint_put(
    p_thread_id text, p_ns text, p_checkpoint_id text, p_parent_id text, p_type text,
    p_checkpoint bytea, p_metadata jsonb, p_channels text[], p_versions text[], p_run_id text,
    p_blob_channels text[], p_blob_versions text[], p_blob_types text[], p_blob_data bytea[],
    p_check boolean, p_extends text,
    OUT ok boolean, OUT newest text)
LANGUAGE plpgsql AS $fn$
BEGIN
    PERFORM pg_advisory_xact_lock(__LOCK_CLASS__, hashtext(p_thread_id || E'\\x1f' || p_ns));
    IF p_check THEN
        SELECT c.checkpoint_id INTO newest FROM __SCHEMA__.checkpoints c
        WHERE c.thread_id = p_thread_id AND c.ns = p_ns
        ORDER BY c.checkpoint_id DESC LIMIT 1;
        IF newest IS DISTINCT FROM p_extends AND NOT EXISTS (
            SELECT 1 FROM __SCHEMA__.checkpoints c
            WHERE c.thread_id = p_thread_id AND c.ns = p_ns
                AND c.checkpoint_id = p_checkpoint_id
        ) THEN
            ok := false;
            RETURN;
        END IF;
    END IF;
    IF cardinality(p_blob_channels) > 0 THEN
        INSERT INTO __SCHEMA__.blobs (thread_id, ns, channel, version, type, data)
        SELECT p_thread_id, p_ns, u.channel, u.version, u.type, u.data
        FROM unnest(p_blob_channels, p_blob_versions, p_blob_types, p_blob_data)
            AS u(channel, version, type, data)
        ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO __SCHEMA__.checkpoints (thread_id, ns, checkpoint_id, parent_id, type,
        checkpoint, metadata, channels, versions, run_id)
    VALUES (p_thread_id, p_ns, p_checkpoint_id, p_parent_id, p_type, p_checkpoint,
        p_metadata, p_channels, p_versions, p_run_id)
    ON CONFLICT (thread_id, ns, checkpoint_id) DO UPDATE SET
        parent_id = EXCLUDED.parent_id, type = EXCLUDED.type,
        checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata,
        channels = EXCLUDED.channels, versions = EXCLUDED.versions,
        run_id = EXCLUDED.run_id, written_at = EXCLUDED.written_at;
    ok := true;
    newest := p_checkpoint_id;
END
$fn$;
""".replace("__LOCK_CLASS__", str(PUT_LOCK_CLASS))

MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(1, "initial", sql=_INITIAL),
    Migration(
        2,
        "retention_indexes",
        indexes=(
            ConcurrentIndex(
                "checkpoints_run_id_idx",
                "ON __SCHEMA__.checkpoints (run_id) WHERE run_id IS NOT NULL",
            ),
            ConcurrentIndex("checkpoints_written_at_idx", "ON __SCHEMA__.checkpoints (written_at)"),
        ),
    ),
)
"""Every migration, by version."""


def _quoted(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '"'


def _sql(text: str, schema: str) -> str:
    return text.replace(_SCHEMA, _quoted(schema))


def advisory_lock_key(schema: str) -> int:
    """Return the session advisory lock that serialises the migrations of one schema.

    Args:
        schema: The schema migrated.

    Returns:
        A signed 64-bit key derived from the schema's name.
    """
    digest = hashlib.sha256(f"agentmesh.checkpoint.migrations:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _applied(con: asyncpg.Connection, schema: str) -> set[int] | None:
    """The versions recorded, or None when the schema or its migrations table is missing."""
    table = f"{_quoted(schema)}.checkpoint_migrations"
    if await con.fetchval("SELECT to_regclass($1) IS NULL", table):
        return None
    rows = await con.fetch(f"SELECT version FROM {table}")  # noqa: S608 - quoted identifier
    return {int(row[0]) for row in rows}


async def _lock(con: asyncpg.Connection, key: int, schema: str) -> None:
    """Take the session advisory lock, polling (see the module docstring for why)."""
    delay = _POLL_FIRST_SECONDS
    waited = False
    while not await con.fetchval("SELECT pg_try_advisory_lock($1)", key):
        if not waited:
            _log.info("checkpoint_migrations_waiting", schema=schema)
            waited = True
        await asyncio.sleep(delay)
        delay = min(delay * 2, _POLL_MAX_SECONDS)


async def _build_index(con: asyncpg.Connection, schema: str, index: ConcurrentIndex) -> None:
    valid = await con.fetchval(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
        schema,
        index.name,
    )
    name = f"{_quoted(schema)}.{_quoted(index.name)}"
    if valid is False:  # left invalid by an interrupted build
        _log.warning("checkpoint_index_rebuilt", schema=schema, index=index.name)
        await con.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    if valid is not True:
        await con.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {_quoted(index.name)} "
            + _sql(index.definition, schema)
        )


async def _run_transaction(
    con: asyncpg.Connection, schema: str, migration: Migration, *, with_indexes: bool
) -> None:
    """Run the migration's statements and record it, in one transaction, retried on lock waits.

    ``with_indexes``: build the migration's indexes here too, without ``CONCURRENTLY``.
    """
    table = f"{_quoted(schema)}.checkpoint_migrations"
    statements = [
        f"CREATE INDEX IF NOT EXISTS {_quoted(index.name)} {_sql(index.definition, schema)}"
        for index in (migration.indexes if with_indexes else ())
    ]
    if migration.sql:
        statements.append(_sql(migration.sql, schema))
    for attempt in range(1, _DDL_ATTEMPTS + 1):
        try:
            async with con.transaction():
                await con.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
                for statement in statements:
                    await con.execute(statement)
                await con.execute(
                    f"INSERT INTO {table} (version, name) VALUES ($1, $2)",  # noqa: S608
                    migration.version,
                    migration.name,
                )
            return
        except asyncpg.LockNotAvailableError:
            if attempt == _DDL_ATTEMPTS:
                raise
            _log.warning(
                "checkpoint_migration_lock_busy",
                schema=schema,
                version=migration.version,
                attempt=attempt,
            )
            await asyncio.sleep(0.2 * attempt)


async def apply_migrations(
    con: asyncpg.Connection, schema: str, migrations: Sequence[Migration] = MIGRATIONS
) -> list[int]:
    """Create the schema if needed and apply the migrations it lacks.

    Args:
        con: A connection of its own (not pooled: it holds a session lock for a while).
        schema: The schema, a plain identifier.
        migrations: What to apply; :data:`MIGRATIONS` by default.

    Returns:
        The versions this call applied (empty when another process did, or nothing was due).

    Raises:
        asyncpg.PostgresError: A statement failed (the caller translates it).
        OSError: The connection failed.
    """
    wanted = {m.version for m in migrations}
    done = await _applied(con, schema)
    if done is not None and wanted <= done:
        return []
    key = advisory_lock_key(schema)
    await _lock(con, key, schema)
    try:
        exists = await con.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
        if exists is None:
            await con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
        await con.execute(
            f"CREATE TABLE IF NOT EXISTS {_quoted(schema)}.checkpoint_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = await _applied(con, schema) or set()
        unknown = sorted(v for v in done if v not in wanted)
        if unknown:
            _log.warning("checkpoint_migrations_unknown", schema=schema, versions=unknown)
        # tables this call creates serve nobody yet: their indexes need no CONCURRENTLY
        fresh = 1 not in done
        applied: list[int] = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            if not fresh:
                for index in migration.indexes:
                    await _build_index(con, schema, index)
            await _run_transaction(con, schema, migration, with_indexes=fresh)
            applied.append(migration.version)
            _log.info("checkpoint_migration_applied", schema=schema, version=migration.version)
        return applied
    finally:
        await con.execute("SELECT pg_advisory_unlock($1)", key)
