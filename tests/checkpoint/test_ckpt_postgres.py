"""The PostgreSQL checkpoint store against a real server: what only PostgreSQL has.

Migrations (concurrent openers, re-open, an interrupted index build), schema isolation, the
compare-and-set under real concurrency (several pools, several connections), failures in plain
words without credentials, a lost connection, paging of long listings. The behaviour every
backend shares is in ``test_ckpt_contract.py``. Each test works in its own throwaway schema.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from agentmesh.checkpoint.store import postgres as postgres_module
from agentmesh.checkpoint.store._postgres_migrations import MIGRATIONS, apply_migrations
from agentmesh.checkpoint.store._postgres_sql import Statements, list_statement
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, ListQuery, WriteRecord
from agentmesh.checkpoint.store.postgres import PostgresCheckpointStore
from agentmesh.core.errors import CheckpointConflictError, CheckpointError

pytestmark = pytest.mark.postgres

ALL_VERSIONS = [m.version for m in MIGRATIONS]


@pytest.fixture
def dsn(postgres_address: tuple[str, int]) -> str:
    host, port = postgres_address
    return f"postgresql://postgres@{host}:{port}/test"


async def _execute(dsn: str, query: str, *args: object) -> None:
    con = await asyncpg.connect(dsn)
    try:
        await con.execute(query, *args)
    finally:
        await con.close()


async def _fetch(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    con = await asyncpg.connect(dsn)
    try:
        return await con.fetch(query, *args)
    finally:
        await con.close()


@pytest.fixture
async def schema(dsn: str) -> AsyncIterator[str]:
    name = f"ckpt_pg_{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        await _execute(dsn, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _record(thread: str, checkpoint_id: str, parent: str | None = None, **meta: object):
    return CheckpointRecord(
        thread_id=thread,
        namespace="",
        checkpoint_id=checkpoint_id,
        parent_id=parent,
        checkpoint=Blob("msgpack", f"doc {checkpoint_id}".encode()),
        metadata={"step": 0, **meta},
        channel_versions={"messages": checkpoint_id},
    )


def _blobs(checkpoint_id: str) -> dict[tuple[str, str], Blob]:
    return {("messages", checkpoint_id): Blob("msgpack", f"value {checkpoint_id}".encode())}


async def test_two_stores_opening_together_migrate_once(dsn: str, schema: str) -> None:
    first = PostgresCheckpointStore(dsn, schema=schema)
    second = PostgresCheckpointStore(dsn, schema=schema)
    await asyncio.gather(first.__aenter__(), second.__aenter__())
    try:
        # one of them applied every version, the other found them applied
        assert sorted([*first.migrations_applied, *second.migrations_applied]) == ALL_VERSIONS
        assert {first.migrations_applied, second.migrations_applied} == {
            (),
            tuple(ALL_VERSIONS),
        }
        # both serve, on the same tables
        await first.put(_record("t", "0001"), _blobs("0001"), check_extends=True)
        stored = await second.get("t", "")
        assert stored is not None
        assert stored.values["messages"].data == b"value 0001"
    finally:
        await first.close()
        await second.close()
    rows = await _fetch(dsn, f'SELECT version FROM "{schema}".checkpoint_migrations')
    assert sorted(row[0] for row in rows) == ALL_VERSIONS


async def test_reopen_is_a_no_op(dsn: str, schema: str) -> None:
    async with PostgresCheckpointStore(dsn, schema=schema) as store:
        assert store.migrations_applied == tuple(ALL_VERSIONS)
        await store.put(_record("t", "0001"), _blobs("0001"))
    before = await _fetch(
        dsn,
        "SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 ORDER BY 1",
        schema,
    )
    async with PostgresCheckpointStore(dsn, schema=schema) as store:
        assert store.migrations_applied == ()
        assert await store.get("t", "") is not None
    after = await _fetch(
        dsn,
        "SELECT c.relname, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 ORDER BY 1",
        schema,
    )
    assert [tuple(r) for r in after] == [tuple(r) for r in before]


async def test_schema_has_valid_indexes_and_external_payloads(dsn: str, schema: str) -> None:
    async with PostgresCheckpointStore(dsn, schema=schema):
        pass
    indexes = await _fetch(
        dsn,
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        schema,
    )
    valid = {row[0]: row[1] for row in indexes}
    assert valid["checkpoints_run_id_idx"] is True
    assert valid["checkpoints_written_at_idx"] is True
    storage = await _fetch(
        dsn,
        "SELECT c.relname, a.attname, a.attstorage::text FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND a.attname IN ('checkpoint', 'data')",
        schema,
    )
    assert {(row[0], row[1]): row[2] for row in storage} == {
        ("checkpoints", "checkpoint"): "e",
        ("blobs", "data"): "e",
        ("writes", "data"): "e",
    }


async def test_an_interrupted_index_build_is_redone(dsn: str, schema: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        assert await apply_migrations(con, schema, MIGRATIONS[:1]) == [1]
        # what a CREATE INDEX CONCURRENTLY killed half-way leaves behind: an invalid index
        await con.execute(f'CREATE INDEX checkpoints_run_id_idx ON "{schema}".checkpoints (ns)')
        await con.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = $1::regclass",
            f'"{schema}".checkpoints_run_id_idx',
        )
    finally:
        await con.close()
    async with PostgresCheckpointStore(dsn, schema=schema) as store:
        assert store.migrations_applied == (2,)
    rows = await _fetch(
        dsn,
        "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indexrelid = $1::regclass",
        f'"{schema}".checkpoints_run_id_idx',
    )
    assert rows[0][0] is True
    assert "(run_id)" in rows[0][1]


async def test_schemas_are_isolated(dsn: str, schema: str) -> None:
    other = schema + "_b"
    try:
        async with (
            PostgresCheckpointStore(dsn, schema=schema) as one,
            PostgresCheckpointStore(dsn, schema=other) as two,
        ):
            await one.put(_record("t", "0001"), _blobs("0001"))
            await two.put(_record("t", "0009"), _blobs("0009"))
            await two.put_writes(
                "t", "", "0009", [WriteRecord("task", "", 0, "x", Blob("json", b"1"))]
            )
            got_one = await one.get("t", "")
            got_two = await two.get("t", "")
            assert got_one is not None
            assert got_two is not None
            assert got_one.record.checkpoint_id == "0001"
            assert got_one.writes == ()
            assert got_two.record.checkpoint_id == "0009"
            await one.delete_thread("t")
            assert await one.get("t", "") is None
            assert await two.get("t", "") is not None
            # a put that extends the other schema's head is refused: the CAS is per schema
            with pytest.raises(CheckpointConflictError):
                await one.put(_record("t", "0010"), {}, extends="0009", check_extends=True)
    finally:
        await _execute(dsn, f'DROP SCHEMA IF EXISTS "{other}" CASCADE')


async def test_compare_and_set_under_real_concurrency(dsn: str, schema: str) -> None:
    async with (
        PostgresCheckpointStore(dsn, schema=schema, min_size=4, max_size=4) as one,
        PostgresCheckpointStore(dsn, schema=schema, min_size=4, max_size=4) as two,
    ):

        async def attempt(
            checkpoint_id: str, expected: str | None
        ) -> tuple[str, CheckpointConflictError | None]:
            store = one if int(checkpoint_id[-1]) % 2 else two
            try:
                await store.put(
                    _record("race", checkpoint_id, expected),
                    _blobs(checkpoint_id),
                    extends=expected,
                    check_extends=True,
                )
            except CheckpointConflictError as refused:
                return checkpoint_id, refused
            return checkpoint_id, None

        head: str | None = None
        for round_ in range(5):
            contenders = [f"{round_:02d}-{n}" for n in range(8)]
            results = await asyncio.gather(*(attempt(c, head) for c in contenders))
            winners = [c for c, exc in results if exc is None]
            assert len(winners) == 1, results
            for _, refused in results:
                if refused is not None:
                    assert refused.expected == head
                    assert refused.actual == winners[0]
            head = winners[0]
        listed = [c.record.checkpoint_id async for c in one.list(ListQuery(thread_id="race"))]
        assert len(listed) == 5
        assert listed[0] == head
        # refused puts wrote nothing: one blob per stored checkpoint
        rows = await _fetch(dsn, f'SELECT count(*) FROM "{schema}".blobs')
        assert rows[0][0] == 5


async def test_unreachable_server_is_named_without_credentials() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = PostgresCheckpointStore(
        f"postgresql://alice:s3cr3t-pw@127.0.0.1:{port}/test", connect_timeout_seconds=2
    )
    with pytest.raises(CheckpointError) as caught:
        await store.__aenter__()
    message = str(caught.value)
    assert message.startswith(f"postgres checkpoint store at 127.0.0.1:{port}: ")
    assert "connection refused" in message
    assert "s3cr3t" not in message
    assert "alice" not in message


async def test_closed_store_refuses_calls(dsn: str, schema: str) -> None:
    store = PostgresCheckpointStore(dsn, schema=schema)
    async with store:
        await store.put(_record("t", "0001"), {})
    with pytest.raises(CheckpointError, match="closed"):
        await store.get("t", "")


def test_bad_schema_name_is_refused() -> None:
    with pytest.raises(CheckpointError, match="schema"):
        PostgresCheckpointStore("postgresql://postgres@127.0.0.1/test", schema='x"; DROP')


async def test_a_lost_connection_is_replaced(dsn: str, schema: str) -> None:
    async with PostgresCheckpointStore(dsn, schema=schema, min_size=1, max_size=1) as store:
        await store.put(_record("t", "0001"), _blobs("0001"))
        # the connection the put used, kept warm by the store for its next call
        pid = await store._run(  # pyright: ignore[reportPrivateUsage]
            lambda con: con.fetchval("SELECT pg_backend_pid()"), "pid"
        )
        await _execute(dsn, "SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.1)
        stored = await store.get("t", "")
        assert stored is not None
        assert stored.values["messages"].data == b"value 0001"


async def test_overlapping_calls_share_a_single_connection(dsn: str, schema: str) -> None:
    # The store keeps its connection warm between calls; calls that overlap must hand it back
    # to the pool, or the second of them would wait for it forever.
    async with PostgresCheckpointStore(dsn, schema=schema, min_size=1, max_size=1) as store:

        async def put_then_get(n: int) -> bytes:
            checkpoint_id = f"{n:04d}"
            await store.put(_record(f"t{n}", checkpoint_id), _blobs(checkpoint_id))
            stored = await store.get(f"t{n}", "")
            assert stored is not None
            return stored.values["messages"].data

        for _ in range(3):
            got = await asyncio.wait_for(
                asyncio.gather(*(put_then_get(n) for n in range(20))), timeout=30
            )
            assert got == [f"value {n:04d}".encode() for n in range(20)]
        pid_before = await store._run(  # pyright: ignore[reportPrivateUsage]
            lambda con: con.fetchval("SELECT pg_backend_pid()"), "pid"
        )
        pid_after = await store._run(  # pyright: ignore[reportPrivateUsage]
            lambda con: con.fetchval("SELECT pg_backend_pid()"), "pid"
        )
        assert pid_after == pid_before  # one connection throughout


async def test_long_listings_page_by_keyset(
    dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres_module, "_PAGE", 3)
    async with PostgresCheckpointStore(dsn, schema=schema) as store:
        # equal checkpoint ids across threads and namespaces: the keyset must break ties
        for thread in ("a", "b"):
            for ns in ("", "sub"):
                for n in range(4):
                    record = CheckpointRecord(
                        thread, ns, f"{n:04d}", None, Blob("json", b"{}"), {"n": n}, {}
                    )
                    await store.put(record, {})
        everything = [
            (c.record.checkpoint_id, c.record.thread_id, c.record.namespace)
            async for c in store.list(ListQuery())
        ]
        assert everything == sorted(everything, reverse=True)
        assert len(everything) == 16
        one_thread = [
            (c.record.checkpoint_id, c.record.namespace)
            async for c in store.list(ListQuery(thread_id="b"))
        ]
        assert one_thread == sorted(one_thread, reverse=True)
        assert len(one_thread) == 8
        limited = [c async for c in store.list(ListQuery(thread_id="a", namespace="", limit=5))]
        assert [c.record.checkpoint_id for c in limited] == ["0003", "0002", "0001", "0000"]
        filtered = [
            c.record.thread_id async for c in store.list(ListQuery(metadata={"n": 2}, limit=3))
        ]
        assert filtered == ["b", "b", "a"]


async def test_metadata_nul_characters_are_dropped(dsn: str, schema: str) -> None:
    async with PostgresCheckpointStore(dsn, schema=schema) as store:
        await store.put(_record("t", "0001", note="a\x00b", nested={"k\x00": ["\x00"]}), {})
        stored = await store.get("t", "")
        assert stored is not None
        assert stored.record.metadata["note"] == "ab"
        assert stored.record.metadata["nested"] == {"k": [""]}


async def test_size_counts_tables_indexes_and_toast(dsn: str, schema: str) -> None:
    async with PostgresCheckpointStore(dsn, schema=schema) as store:
        empty = await store.size_bytes()
        big = bytes(range(256)) * 4096  # 1 MiB, stored out of line
        await store.put(_record("t", "0001"), {("messages", "0001"): Blob("bytes", big)})
        assert await store.size_bytes() >= empty + len(big)


async def test_upgrade_runs_while_another_process_writes(dsn: str, schema: str) -> None:
    con = await asyncpg.connect(dsn)
    try:
        assert await apply_migrations(con, schema, MIGRATIONS[:1]) == [1]
    finally:
        await con.close()
    put = Statements.for_schema(schema).put
    stop = asyncio.Event()
    written: list[str] = []

    async def older_process() -> None:  # writes through the version-1 schema throughout
        writer = await asyncpg.connect(dsn)
        try:
            while not stop.is_set() or len(written) < 3:
                checkpoint_id = f"{len(written):06d}"
                ok = await writer.fetchval(
                    put, "live", "", checkpoint_id, None, "json", b"{}", "{}", [], [], None,
                    [], [], [], [], False, None,
                )  # fmt: skip
                assert ok is True
                written.append(checkpoint_id)
                await asyncio.sleep(0.005)
        finally:
            await writer.close()

    task = asyncio.create_task(older_process())
    try:
        async with PostgresCheckpointStore(dsn, schema=schema) as store:
            assert store.migrations_applied == (2,)
            stop.set()
            await task
            stored = await store.get("live", "")
            assert stored is not None
            assert stored.record.checkpoint_id == written[-1]
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
    rows = await _fetch(
        dsn,
        "SELECT count(*) FILTER (WHERE NOT i.indisvalid), count(*) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = $1 AND c.relname LIKE 'checkpoints_%_idx'",
        schema,
    )
    assert tuple(rows[0]) == (0, 2)


async def test_synchronous_commit_can_be_relaxed(dsn: str, schema: str) -> None:
    for durable, expected in ((True, "on"), (False, "off")):
        async with PostgresCheckpointStore(dsn, schema=schema, synchronous_commit=durable) as store:
            pool = store._pool  # pyright: ignore[reportPrivateUsage]
            assert pool is not None
            assert await pool.fetchval("SHOW synchronous_commit") == expected
            await store.put(_record("t", f"000{int(durable)}"), {})
            assert await store.get("t", "") is not None


async def test_unserialisable_metadata_filter_is_a_checkpoint_error(dsn: str, schema: str) -> None:
    async with PostgresCheckpointStore(dsn, schema=schema) as store:
        with pytest.raises(CheckpointError, match="not JSON-able"):
            _ = [c async for c in store.list(ListQuery(metadata={"x": object()}))]


async def test_listed_values_shared_by_checkpoints_are_sent_once_a_page(
    dsn: str, schema: str
) -> None:
    # 130 checkpoints in two threads (two pages of a listing of both): every checkpoint refers
    # to the thread's one "doc" blob (same channel and version in both threads, different
    # bytes) and to its own "step" blob
    async with PostgresCheckpointStore(dsn, schema=schema) as store:
        for thread in ("a", "b"):
            doc = {("doc", "1"): Blob("msgpack", f"doc of {thread}".encode() * 50)}
            for n in range(65):
                checkpoint_id = f"{n:04d}"
                record = CheckpointRecord(
                    thread_id=thread,
                    namespace="",
                    checkpoint_id=checkpoint_id,
                    parent_id=None,
                    checkpoint=Blob("msgpack", b"doc"),
                    metadata={"step": n},
                    channel_versions={"doc": "1", "step": checkpoint_id},
                )
                blobs = {("step", checkpoint_id): Blob("msgpack", f"{thread}{n}".encode())}
                await store.put(record, {**doc, **blobs} if n == 0 else blobs)
        listed = [c async for c in store.list(ListQuery())]
        assert len(listed) == 130
        for item in listed:
            record = item.record
            alone = await store.get(record.thread_id, "", record.checkpoint_id)
            assert alone is not None
            assert item.values == alone.values
            assert item.values["doc"].data == f"doc of {record.thread_id}".encode() * 50
        # the page's SQL sends the shared blob with its first checkpoint only
        statement, args = list_statement(schema, ListQuery(thread_id="a"), None, 100)
        rows = await _fetch(dsn, statement, *args)
        docs = [row[12][list(row[10]).index("doc")] for row in rows]  # value data, channels
        assert docs[0] is not None
        assert docs[1:] == [None] * (len(rows) - 1)
