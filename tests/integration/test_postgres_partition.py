"""Postgres stops answering without closing its connections (a network partition).

Both Postgres stores reach the real server through a proxy the test freezes: connections stay
open, no byte passes. A call must then fail in plain words after the store's command timeout,
not wait for TCP to give up (a quarter of an hour), and the store must work again once the
line thaws.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from _tcp_proxy import TcpProxy

from agentmesh.checkpoint.store.postgres import PostgresCheckpointStore
from agentmesh.collector.store import PostgresStore
from agentmesh.collector.store.scratch import scratch_schema
from agentmesh.core import CheckpointError, StoreUnavailableError

_NO_HANG = 60.0
"""Far beyond the timeouts below: a call that has not returned by then hangs."""


@pytest.fixture
async def proxy(postgres_address: tuple[str, int]) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(*postgres_address)
    await proxy.start()
    yield proxy
    proxy.thaw()
    await proxy.cut()


async def test_the_checkpoint_store_fails_in_plain_words_and_recovers(
    proxy: TcpProxy, postgres_address: tuple[str, int]
) -> None:
    host, port = postgres_address
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
    async with scratch_schema(f"postgresql://postgres@{host}:{port}/test") as schema:
        store = PostgresCheckpointStore(
            dsn, schema=schema, command_timeout_seconds=1, connect_timeout_seconds=2
        )
        async with store:
            assert await store.get("thread-1", "") is None
            proxy.freeze()
            with pytest.raises(CheckpointError, match=r"get thread 'thread-1': no answer in time"):
                await asyncio.wait_for(store.get("thread-1", ""), _NO_HANG)
            proxy.thaw()
            assert await asyncio.wait_for(store.get("thread-1", ""), _NO_HANG) is None


async def test_the_span_store_reports_itself_unavailable_and_recovers(
    proxy: TcpProxy, postgres_address: tuple[str, int]
) -> None:
    host, port = postgres_address
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
    async with scratch_schema(f"postgresql://postgres@{host}:{port}/test") as schema:
        store = PostgresStore(
            dsn, schema=schema, command_timeout_seconds=1, connect_timeout_seconds=2
        )
        async with store:
            assert await store.count_spans() == 0
            proxy.freeze()
            with pytest.raises(StoreUnavailableError, match="PostgreSQL"):
                await asyncio.wait_for(store.count_spans(), _NO_HANG)
            proxy.thaw()
            assert await asyncio.wait_for(store.count_spans(), _NO_HANG) == 0


def test_a_command_timeout_must_be_positive() -> None:
    with pytest.raises(CheckpointError, match="command_timeout_seconds must be above 0"):
        PostgresCheckpointStore("postgresql://x@127.0.0.1/x", command_timeout_seconds=0)
