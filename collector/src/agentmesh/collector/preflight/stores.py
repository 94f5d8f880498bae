"""The store the collector would write to: reachable, not held by another process, its schema.

Nothing is written: a DuckDB file is opened read-only, Postgres is asked which migrations a
schema has (the collector applies the missing ones when it starts).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import asyncpg
import duckdb

from agentmesh.collector.preflight.finding import Finding
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.store.duckdb_schema import SCHEMA_VERSION
from agentmesh.collector.store.postgres_errors import server_address, store_error
from agentmesh.collector.store.postgres_migrations import load_migrations

__all__ = ["check_store"]

_PG_FAILURES = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)
"""What connecting and asking may raise (sockets, the server, the client), said in words."""


async def check_store(settings: CollectorSettings) -> Finding:
    """Check the backend ``settings.store`` names.

    Args:
        settings: The collector's settings.

    Returns:
        The finding (``store``).
    """
    if settings.store == "memory":
        return Finding("store", "warn", "memory: nothing is kept when the collector stops")
    if settings.store == "postgres":
        return await _postgres(settings)
    return await asyncio.to_thread(_duckdb, settings.duckdb_path)


def _duckdb(path: Path) -> Finding:
    if not path.exists():
        folder = next((p for p in path.resolve().parents if p.exists()), Path("/"))
        if not os.access(folder, os.W_OK):
            return Finding(
                "store", "fail", f"DuckDB {path}: cannot create it ({folder} is not writable)"
            )
        return Finding("store", "ok", f"DuckDB {path}: created at start")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        reason = str(exc).strip().splitlines()[0]
        if "lock" in reason.lower():
            reason = f"held by another process (DuckDB allows one writer): {reason}"
        return Finding("store", "fail", f"DuckDB {path}: {reason}")
    try:
        version = _scalar(con, "SELECT max(version) FROM schema_version")
        runs = _scalar(con, "SELECT count(*) FROM runs")  # a view since version 5, a table before
    except duckdb.Error as exc:
        return Finding("store", "fail", f"DuckDB {path}: not an AgentMesh store ({exc})")
    finally:
        con.close()
    if version > SCHEMA_VERSION:
        return Finding(
            "store",
            "fail",
            f"DuckDB {path}: schema version {version} is newer than this collector's "
            f"{SCHEMA_VERSION}: upgrade AgentMesh",
        )
    upgrade = f"; upgraded from version {version} at start" if version < SCHEMA_VERSION else ""
    return Finding("store", "ok", f"DuckDB {path}: {runs:,} runs, schema {SCHEMA_VERSION}{upgrade}")


def _scalar(con: duckdb.DuckDBPyConnection, query: str) -> int:
    row = con.execute(query).fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


async def _postgres(settings: CollectorSettings) -> Finding:
    dsn = settings.postgres_dsn.get_secret_value()
    address = server_address(dsn)
    schema = settings.postgres_schema
    try:
        con = await asyncpg.connect(dsn, timeout=settings.postgres_connect_timeout_seconds)
    except _PG_FAILURES as exc:
        return Finding("store", "fail", str(store_error(exc, address)))
    try:
        server = con.get_server_version()
        schema_exists = await con.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
        )
        exists = await con.fetchval(
            "SELECT to_regclass(format('%I.schema_migrations', $1::text)) IS NOT NULL", schema
        )
        done: set[int] = set()
        if exists:
            # the schema is a plain identifier (the setting's pattern)
            rows = await con.fetch(f'SELECT version FROM "{schema}".schema_migrations')  # noqa: S608
            done = {int(row["version"]) for row in rows}
        can_create = await con.fetchval(
            "SELECT has_database_privilege(current_user, current_database(), 'CREATE')"
        )
    except _PG_FAILURES as exc:
        return Finding("store", "fail", str(store_error(exc, address)))
    finally:
        await con.close()
    known = {m.version for m in load_migrations()}
    release = f"{server.major}.{server.micro}" if server.major >= 10 else str(server.major)
    where = f"PostgreSQL {release} at {address}, schema {schema}"
    pending = sorted(known - done)
    if not schema_exists and not can_create:
        return Finding("store", "fail", f"{where}: missing, and this user may not create it")
    if done - known:
        return Finding(
            "store",
            "warn",
            f"{where}: has migrations this collector does not know "
            f"({', '.join(map(str, sorted(done - known)))}): a newer collector wrote it",
        )
    if pending:
        return Finding("store", "ok", f"{where}: {len(pending)} migration(s) applied at start")
    return Finding("store", "ok", f"{where}: up to date")
