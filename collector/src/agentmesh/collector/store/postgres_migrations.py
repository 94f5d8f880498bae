"""Versioned migrations of the PostgreSQL store, applied in order when a store opens.

Migrations are the files ``migrations/postgres/NNNN_name.sql`` shipped with the package. The
table ``schema_migrations`` records each version applied (and when). Opening a store takes a
PostgreSQL advisory lock (one per schema) before reading that table, so collectors starting
together apply each migration once; each migration runs in its own transaction with its row
in ``schema_migrations``, so a failed migration leaves nothing half done.

Migrations are additive (new tables, nullable columns, indexes): a collector running an older
version keeps working on a database migrated further, and one that finds versions it does not
know logs it and carries on.

Example:
    >>> [(m.version, m.name) for m in load_migrations()][:2]
    [(1, 'initial'), (2, 'query_indexes')]
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Final

import asyncpg

from agentmesh.core.errors import StoreError
from agentmesh.core.log import get_logger

__all__ = ["Migration", "advisory_lock_key", "apply_migrations", "load_migrations"]

_log = get_logger(__name__)

_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_CREATE_TABLE: Final = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file.

    Attributes:
        version: Its number (``0001`` is 1).
        name: The rest of its file name, without ``.sql``.
        sql: Its statements.
    """

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Read the migrations shipped with the package.

    Returns:
        Them, by version.

    Raises:
        StoreError: A file is misnamed, or the versions are not 1, 2, 3… without gaps.
    """
    folder = resources.files("agentmesh.collector.store").joinpath("migrations", "postgres")
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.match(entry.name)
        if match is None:
            raise StoreError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migration versions must be 1, 2, 3… without gaps, got {versions}")
    return found


def advisory_lock_key(schema: str) -> int:
    """Return the advisory lock that serialises migrations of one schema.

    Args:
        schema: The schema migrated.

    Returns:
        A signed 64-bit key derived from the schema's name.
    """
    digest = hashlib.sha256(f"agentmesh.collector.migrations:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def apply_migrations(
    con: asyncpg.Connection, schema: str, migrations: list[Migration] | None = None
) -> list[int]:
    """Apply the migrations a schema lacks, under the schema's advisory lock.

    Args:
        con: A connection whose ``search_path`` starts with ``schema``.
        schema: The schema (names the lock and the log lines).
        migrations: What to apply; :func:`load_migrations` by default.

    Returns:
        The versions applied now (empty when the schema was up to date).
    """
    todo = load_migrations() if migrations is None else migrations
    key = advisory_lock_key(schema)
    await con.execute("SELECT pg_advisory_lock($1)", key)
    try:
        await con.execute(_CREATE_TABLE)
        rows = await con.fetch("SELECT version FROM schema_migrations")
        done = {int(row["version"]) for row in rows}
        newer = sorted(v for v in done if v > len(todo))
        if newer:
            _log.warning(
                "database has migrations this collector does not know; carrying on",
                schema=schema,
                unknown_versions=newer,
            )
        applied: list[int] = []
        for migration in todo:
            if migration.version in done:
                continue
            async with con.transaction():
                await con.execute(migration.sql)
                await con.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            applied.append(migration.version)
            _log.info("migration applied", schema=schema, version=migration.version)
        return applied
    finally:
        await con.execute("SELECT pg_advisory_unlock($1)", key)
