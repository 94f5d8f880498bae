"""A throwaway PostgreSQL schema, for tests that need a fresh, isolated database.

Example::

    async with scratch_schema("postgresql://postgres@127.0.0.1:5432/test") as schema:
        async with PostgresStore(dsn, schema=schema) as store:
            ...  # the schema and everything in it is dropped on exit
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import asyncpg

from agentmesh.collector.store.postgres_errors import server_address, store_error

__all__ = ["scratch_schema"]


@asynccontextmanager
async def scratch_schema(dsn: str, prefix: str = "agentmesh_test") -> AsyncGenerator[str]:
    """Create an empty schema with a random name, and drop it (with its tables) on exit.

    Args:
        dsn: The database.
        prefix: Start of the schema's name (lower-case letters, digits, ``_``).

    Yields:
        The schema's name.

    Raises:
        StoreError: PostgreSQL cannot be reached or refuses.
    """
    schema = f"{prefix}_{secrets.token_hex(6)}"
    address = server_address(dsn)
    try:
        con = await asyncpg.connect(dsn)
        try:
            await con.execute(f'CREATE SCHEMA "{schema}"')
        finally:
            await con.close()
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise store_error(exc, address) from exc
    try:
        yield schema
    finally:
        con = await asyncpg.connect(dsn)
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await con.close()
