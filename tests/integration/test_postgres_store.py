"""The PostgreSQL store against a real server: migrations, races, failures in plain words.

The behaviour every backend shares is in ``tests/unit/collector/test_store_contract.py``; this
file checks what only PostgreSQL has. Each test works in its own throwaway schema.
"""

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from structlog.testing import capture_logs

from agentmesh.collector import SpanRecord
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.postgres_migrations import (
    Migration,
    advisory_lock_key,
    apply_migrations,
    load_migrations,
)
from agentmesh.collector.store.postgres_store import COPY_MIN_SPANS
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.collector.testing import SpanFactory, failed, graph_of
from agentmesh.core import StoreError, StoreUnavailableError

pytestmark = pytest.mark.postgres

TABLES = {"schema_migrations", "spans", "runs", "agents", "handoffs", "detections"}


@pytest.fixture
def dsn(postgres_address: tuple[str, int]) -> str:
    host, port = postgres_address
    return os.environ.get(
        "AGENTMESH_TEST_POSTGRES_DSN", f"postgresql://postgres@{host}:{port}/test"
    )


@pytest.fixture
async def schema(dsn: str) -> AsyncIterator[str]:
    async with scratch_schema(dsn) as name:
        yield name


async def _fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    con = await asyncpg.connect(dsn)
    try:
        return await con.fetch(query, *args)
    finally:
        await con.close()


async def _tables(dsn: str, schema: str) -> set[str]:
    rows = await _fetch(
        dsn, "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
    )
    return {row["table_name"] for row in rows}


async def _migrations(dsn: str, schema: str) -> list[tuple[int, str]]:
    rows = await _fetch(
        dsn, f'SELECT version, name FROM "{schema}".schema_migrations ORDER BY version'
    )
    return [(row["version"], row["name"]) for row in rows]


def _run(f: SpanFactory, loops: int = 1) -> list[SpanRecord]:
    root = f.workflow("research", run_id="run-1")
    spans = [root]
    for _ in range(loops):
        s = f.agent("supervisor", parent=root)
        r = f.agent("researcher", parent=root, handoff_from="supervisor")
        spans += [s, r, f.chat(parent=r, input_tokens=10, output_tokens=5, cost_usd=0.25)]
    return spans


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- migrations ---------------------------------------------------------------------------


def test_migration_files_are_numbered_without_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial"
    assert all(m.sql.strip() for m in migrations)


async def test_a_database_on_migration_6_gets_run_errors_and_keeps_its_runs(
    dsn: str, schema: str
) -> None:
    con = await asyncpg.connect(dsn, server_settings={"search_path": f'"{schema}"'})
    try:  # what a collector before run errors made and wrote
        await apply_migrations(con, schema, load_migrations()[:6])
        await con.execute(
            "INSERT INTO runs (trace_id, run_id, start_ns, end_ns, span_count, llm_calls, "
            "input_tokens, output_tokens, cost_usd, complete) "
            "VALUES ('ab', 'run-old', 1, 2, 1, 0, 0, 0, 0, true)"
        )
    finally:
        await con.close()
    async with PostgresStore(dsn, schema=schema) as store:
        (old,) = await store.runs()
        assert (old.run_id, old.state, old.error) == ("run-old", "complete", None)
        f = SpanFactory()
        root = f.workflow("research", run_id="run-broken")
        await store.write_graph(graph_of([failed(root, "Boom"), f.agent("writer", parent=root)]))
        assert [(r.run_id, r.error) for r in await store.runs(state="failed")] == [
            ("run-broken", "Boom")
        ]
        assert [r.run_id for r in await store.runs(state="complete")] == ["run-old"]
    assert [v for v, _ in await _migrations(dsn, schema)][5:8] == [6, 7, 8]


async def test_open_creates_the_schema_and_records_each_migration(dsn: str, schema: str) -> None:
    async with PostgresStore(dsn, schema=schema):
        pass
    assert await _tables(dsn, schema) >= TABLES
    assert await _migrations(dsn, schema) == [(m.version, m.name) for m in load_migrations()]
    indexes = await _fetch(dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = $1", schema)
    assert {
        "runs_start_ns",
        "detections_trace",
        "runs_run_id_prefix",
        "runs_trace_id_prefix",
        "runs_workflow",
    } <= {row["indexname"] for row in indexes}


async def test_reopening_applies_nothing_and_keeps_the_data(dsn: str, schema: str) -> None:
    f = SpanFactory()
    spans = _run(f)
    async with PostgresStore(dsn, schema=schema) as store:
        await store.write_spans(spans)
    con = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        assert await apply_migrations(con, schema) == []
    finally:
        await con.close()
    async with PostgresStore(dsn, schema=schema) as store:
        assert await store.spans(f.trace_id) == spans
    assert len(await _migrations(dsn, schema)) == len(load_migrations())


async def test_collectors_starting_together_migrate_once(dsn: str, schema: str) -> None:
    stores = [PostgresStore(dsn, schema=schema, min_size=1, max_size=2) for _ in range(5)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        f = SpanFactory()
        spans = _run(f)
        written = await asyncio.gather(*(store.write_spans(spans) for store in stores))
        assert sum(written) == len(spans)
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert await _migrations(dsn, schema) == [(m.version, m.name) for m in load_migrations()]


async def test_migrations_wait_for_the_advisory_lock(dsn: str, schema: str) -> None:
    holder = await asyncpg.connect(dsn)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", advisory_lock_key(schema))
        opening = asyncio.ensure_future(PostgresStore(dsn, schema=schema).open())
        while True:  # until the opening store is seen waiting for the lock
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if waiting or opening.done():
                break
            await asyncio.sleep(0.01)
        assert not opening.done()
        assert "spans" not in await _tables(dsn, schema)  # nothing migrated behind the lock
        await holder.execute("SELECT pg_advisory_unlock($1)", advisory_lock_key(schema))
        store = await opening
        await store.close()
    finally:
        await holder.close()
    assert "spans" in await _tables(dsn, schema)


async def test_a_failing_migration_leaves_nothing_half_done(dsn: str, schema: str) -> None:
    bad = Migration(len(load_migrations()) + 1, "bad", "CREATE TABLE extra (x INT); SELECT 1/0;")
    con = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await apply_migrations(con, schema, [*load_migrations(), bad])
        assert await con.fetchval("SELECT pg_try_advisory_lock($1)", advisory_lock_key(schema))
    finally:
        await con.close()  # the lock was released: this connection could take it
    assert "extra" not in await _tables(dsn, schema)
    assert [v for v, _ in await _migrations(dsn, schema)] == [m.version for m in load_migrations()]


async def test_a_database_migrated_further_still_works(dsn: str, schema: str) -> None:
    """An older collector beside a newer one: additive migrations keep both working."""
    f = SpanFactory()
    async with PostgresStore(dsn, schema=schema) as old:
        await old.write_spans(_run(f)[:1])
        future = Migration(
            len(load_migrations()) + 1,
            "future_column",
            "ALTER TABLE spans ADD COLUMN IF NOT EXISTS future_note TEXT;",
        )
        con = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        try:
            assert await apply_migrations(con, schema, [*load_migrations(), future]) == [
                future.version
            ]
        finally:
            await con.close()
        # the live store goes on writing, through both insert paths
        assert await old.write_spans(_run(f)[1:]) == 3
        big: list[SpanRecord] = []
        while len(big) < COPY_MIN_SPANS:
            big += _run(SpanFactory(), loops=5)
        assert await old.write_spans(big) == len(big)
    with capture_logs() as logs:
        async with PostgresStore(dsn, schema=schema) as older:  # knows fewer migrations
            assert await older.count_spans() == 4 + len(big)
    assert any(
        entry["event"].startswith("database has migrations this collector does not know")
        and entry["unknown_versions"] == [future.version]
        for entry in logs
    )


# --- sharing a database -------------------------------------------------------------------


async def test_two_collectors_replace_one_trace_without_mixing(dsn: str, schema: str) -> None:
    f = SpanFactory()
    spans = _run(f, loops=8)
    small, big = graph_of(spans[:4]), graph_of(spans)
    async with (
        PostgresStore(dsn, schema=schema, max_size=3) as a,
        PostgresStore(dsn, schema=schema, max_size=3) as b,
    ):
        await asyncio.gather(
            *(a.write_graph(small) for _ in range(10)), *(b.write_graph(big) for _ in range(10))
        )
        stored = await a.graph(f.trace_id)
        assert stored is not None
        winner = small if stored.run.span_count == small.span_count else big
        assert stored.handoffs == winner.handoffs
        assert stored.agents == sorted(winner.agents.values(), key=lambda n: n.name)
        assert await b.graph(f.trace_id) == stored


# --- failures in plain words --------------------------------------------------------------


async def test_dead_server_at_open_is_a_clear_store_error() -> None:
    port = _free_port()
    store = PostgresStore(f"postgresql://postgres:secret@127.0.0.1:{port}/test")
    with pytest.raises(StoreError) as info:
        await store.open()
    assert str(info.value) == f"cannot reach PostgreSQL at 127.0.0.1:{port}: connection refused"
    assert "secret" not in str(info.value)
    assert isinstance(info.value.__cause__, OSError)
    assert isinstance(info.value, StoreUnavailableError)  # the pipeline waits and retries
    await store.close()


async def test_unknown_host_and_missing_database_are_named(postgres_address: tuple[str, int]):
    with pytest.raises(StoreError, match=r"cannot reach PostgreSQL at no-such-host\.invalid"):
        await PostgresStore(
            "postgresql://postgres@no-such-host.invalid:5432/test", connect_timeout_seconds=2
        ).open()
    host, port = postgres_address
    with pytest.raises(StoreError, match='database "agentmesh_nowhere" does not exist') as info:
        await PostgresStore(f"postgresql://postgres@{host}:{port}/agentmesh_nowhere").open()
    assert not isinstance(info.value, StoreUnavailableError)  # waiting would not help


async def test_open_retries_after_a_failure(dsn: str, schema: str) -> None:
    """A store that could not open is not stuck: the next call tries again."""
    store = PostgresStore(dsn.replace("/test", "/agentmesh_nowhere"), schema=schema)
    with pytest.raises(StoreError):
        await store.count_spans()
    store._dsn = dsn  # the database comes back (here: the DSN is fixed)
    assert await store.count_spans() == 0
    await store.close()


async def test_a_lost_connection_is_replaced_without_failing_the_call(
    dsn: str, schema: str
) -> None:
    async with PostgresStore(dsn, schema=schema, min_size=1, max_size=1) as store:
        f = SpanFactory()
        pid = await store._run(lambda con: con.fetchval("SELECT pg_backend_pid()"))
        killed = await _fetch(dsn, "SELECT pg_terminate_backend($1)", pid)
        assert killed[0][0] is True
        assert await store.write_spans(_run(f)) == 4  # tried again on a fresh connection
        assert await store.count_spans() == 4
        assert await store._run(lambda con: con.fetchval("SELECT pg_backend_pid()")) != pid


def _as_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}:{parts.port or 5432}"))


async def test_a_server_turned_read_only_is_unavailable_until_writes_come_back(
    dsn: str, schema: str
) -> None:
    """A fail-over demotes the primary under the store: "not now", then fresh connections."""
    role = f"agentmesh_ro_{schema[-8:]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE ROLE "{role}" LOGIN SUPERUSER')
    try:
        async with PostgresStore(_as_user(dsn, role), schema=schema, max_size=2) as store:
            f = SpanFactory()
            assert await store.write_spans(_run(f)) == 4
            await admin.execute(f'ALTER ROLE "{role}" SET default_transaction_read_only = on')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            g = SpanFactory()
            with pytest.raises(StoreUnavailableError, match="read-only transaction"):
                await store.write_spans(_run(g))  # on a fresh connection, a read-only session
            await admin.execute(f'ALTER ROLE "{role}" RESET default_transaction_read_only')
            # a pooled session is never read-only: each makes its COPY table when it connects,
            # which a read-only (or standby) session refuses; so the retry gets a writable one
            assert await store.write_spans(_run(g)) == 4
            assert await store.count_spans() == 8
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
        )
        await admin.execute(f'DROP OWNED BY "{role}" CASCADE')
        await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()


async def test_invalid_arguments_are_refused_before_connecting() -> None:
    with pytest.raises(StoreError, match="lower-case SQL identifier"):
        PostgresStore("postgresql://x/y", schema='bad"; DROP SCHEMA public; --')
    with pytest.raises(StoreError, match="pool sizes"):
        PostgresStore("postgresql://x/y", min_size=5, max_size=2)
