"""A store URL names a non-default schema or key prefix (``?schema=``, ``?prefix=``).

``PostgresSaver(..., schema=…)`` and ``RedisSaver(..., prefix=…)`` keep their checkpoints
apart from the default ones; ``open_store`` (``agentmesh checkpoints``,
``AGENTMESH_CHECKPOINT_URL``) could not reach them: asyncpg sent ``schema`` to the server as a
setting, redis-py passed ``prefix`` to its connections and failed with a raw ``TypeError``.
The options are taken out of the URL before the driver sees it, the stores name themselves
with them (``location``, recorded on spans), and a Redis query option redis-py does not take
is a one-line ``ConfigError`` naming it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from _ckpt_stores import _drop_redis_keys, _drop_schema, backend_class

from agentmesh.checkpoint.store import Blob, CheckpointRecord, ListQuery, open_store
from agentmesh.core.errors import ConfigError

_RECORD = CheckpointRecord("t", "", "0001", None, Blob("msgpack", b"{}"), {"step": 0}, {})


def test_open_store_takes_the_schema_out_of_a_postgres_url() -> None:
    store = open_store("postgresql://app:s3cret@db:5433/agents?sslmode=disable&schema=team_a")
    assert isinstance(store, backend_class("postgres"))
    assert store.schema == "team_a"
    assert store.address == "db:5433"
    assert store.location == "postgresql://app:***@db:5433/agents?sslmode=disable&schema=team_a"
    assert open_store("postgres://db/agents").location == "postgresql://db/agents"


def test_open_store_takes_the_prefix_out_of_a_redis_url() -> None:
    store = open_store("redis://cache:6379/3?prefix=team:a&socket_timeout=5")
    assert isinstance(store, backend_class("redis"))
    assert store.prefix == "team:a"
    assert store.location == "redis://cache:6379/3?socket_timeout=5&prefix=team:a"
    default = open_store("redis://cache:6379/3")
    assert (default.prefix, default.location) == ("agentmesh:ckpt", "redis://cache:6379/3")


def test_stores_opened_with_options_name_themselves_by_the_url_that_reopens_them() -> None:
    postgres = backend_class("postgres")("postgresql://db/agents", schema="qa_race")
    assert postgres.location == "postgresql://db/agents?schema=qa_race"
    assert open_store(postgres.location).schema == "qa_race"
    redis = backend_class("redis")("redis://cache:6379/0", prefix="qa:race")
    assert redis.location == "redis://cache:6379/0?prefix=qa:race"
    assert open_store(redis.location).prefix == "qa:race"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://db/agents?schema=Team-A", "schema must be a lower-case SQL identifier"),
        ("postgresql://db/agents?schema=", "schema must be a lower-case SQL identifier"),
        ("postgresql://db/agents?schema=a&schema=b", "gives schema= 2 times"),
        ("redis://cache:6379/0?prefix=", "the key prefix must not be empty"),
        ("postgresql://db/agents?prefix=team:a", "prefix= (the prefix of its keys)"),
        ("redis://cache:6379/0?schema=team_a", "schema= (the schema of its tables)"),
    ],
)
def test_option_values_the_store_refuses_are_config_errors(url: str, named: str) -> None:
    with pytest.raises(ConfigError, match="checkpoint store URL") as caught:
        open_store(url)
    assert named in str(caught.value)


@pytest.mark.parametrize("sync", [False, True])
def test_an_unknown_redis_query_option_is_a_config_error_naming_it(sync: bool) -> None:
    cls = backend_class("redis") if not sync else _sync_redis()
    with pytest.raises(ConfigError) as caught:
        cls("redis://:s3cret@cache:6379/12?prefx=qa:race&socket_timeout=2")
    message = str(caught.value)
    assert "unsupported query option 'prefx'" in message
    assert "\n" not in message
    assert "s3cret" not in message
    with pytest.raises(ConfigError, match=r"'prefix'.*read it from \?prefix="):
        cls("redis://cache:6379/12?prefix=qa:race")  # the constructor takes prefix=…
    with pytest.raises(ConfigError, match="unsupported query option 'bogus'"):
        open_store("redis://cache:6379/12?prefix=qa:race&bogus=1")


def _sync_redis() -> type:
    from agentmesh.checkpoint.store.redis import SyncRedisCheckpointStore

    return SyncRedisCheckpointStore


def test_query_options_are_taken_out_and_put_back_as_written() -> None:
    from agentmesh.checkpoint.store._url_options import pop_query_option, with_query_option

    url = "postgresql://db/x?a=1&schema=s%5Fx&b=%2Fp#frag"
    assert pop_query_option(url, "schema") == ("postgresql://db/x?a=1&b=%2Fp#frag", "s_x")
    assert pop_query_option("postgresql://db/x?schema=s", "schema") == ("postgresql://db/x", "s")
    assert pop_query_option("postgresql://db/x?a=1", "schema") == ("postgresql://db/x?a=1", None)
    assert (
        with_query_option("redis://h/0?db=1", "prefix", "a b:c") == "redis://h/0?db=1&prefix=a+b:c"
    )
    assert pop_query_option("redis://h/0?db=1&prefix=a+b:c", "prefix")[1] == "a b:c"


@pytest.fixture
def postgres_dsn(postgres_address: tuple[str, int]) -> Iterator[tuple[str, str]]:
    host, port = postgres_address
    dsn = f"postgresql://postgres@{host}:{port}/test"
    schema = f"ckpt_opt_{uuid.uuid4().hex[:10]}"
    try:
        yield dsn, schema
    finally:
        asyncio.run(_drop_schema(dsn, schema))


@pytest.fixture
def redis_url(redis_address: tuple[str, int]) -> Iterator[tuple[str, str]]:
    host, port = redis_address
    url = f"redis://{host}:{port}/0"
    prefix = f"agentmesh:test:opt:{uuid.uuid4().hex[:10]}"
    try:
        yield url, prefix
    finally:
        asyncio.run(_drop_redis_keys(url, prefix))


async def _thread_ids(url: str) -> list[str]:
    async with open_store(url) as store:
        return [s.record.thread_id async for s in store.list(ListQuery())]


def test_a_postgres_store_in_another_schema_is_reached_by_its_url(
    postgres_dsn: tuple[str, str],
) -> None:
    dsn, schema = postgres_dsn

    async def scenario() -> None:
        async with backend_class("postgres")(dsn, schema=schema) as store:
            await store.put(_RECORD, {})
            location = store.location
        assert await _thread_ids(f"{dsn}?schema={schema}") == ["t"]
        assert await _thread_ids(location) == ["t"]

    asyncio.run(scenario())


def test_a_redis_store_under_another_prefix_is_reached_by_its_url(
    redis_url: tuple[str, str],
) -> None:
    url, prefix = redis_url

    async def scenario() -> None:
        async with backend_class("redis")(url, prefix=prefix) as store:
            await store.put(_RECORD, {})
            location = store.location
        assert await _thread_ids(f"{url}?prefix={prefix}") == ["t"]
        assert await _thread_ids(location) == ["t"]

    asyncio.run(scenario())
