"""A checkpoint store URL its driver cannot use is refused when the store is made, in words.

redis-py would read ``redis://host:6379/abc`` as database 0 without a word, and refuse a port
that is not a number only at the first write, with a bare ``ValueError``; asyncpg refuses a
DSN only when it connects. Each is a ``ConfigError`` as soon as the store is made: the handoff
writer then gives the store up at once instead of retrying it for ever, and
``agentmesh checkpoints`` exits 2 with the reason.
"""

from __future__ import annotations

import pytest

from agentmesh.checkpoint.store.factory import open_store
from agentmesh.core.errors import ConfigError

redis_store = pytest.importorskip("agentmesh.checkpoint.store.redis")
postgres_store = pytest.importorskip("agentmesh.checkpoint.store.postgres")


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis://:s3cret@cache:6379/abc", "the database must be a number"),
        ("redis://:s3cret@cache:port/0", "Port could not be cast to integer"),
        ("redis://cache:6379/0?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("rediss://cache/1/2", "the database must be a number"),
    ],
)
def test_a_redis_url_redis_py_cannot_use_as_written_is_refused(url: str, said: str) -> None:
    for make in (
        redis_store.RedisCheckpointStore,
        redis_store.SyncRedisCheckpointStore,
        open_store,
    ):
        with pytest.raises(ConfigError) as caught:
            make(url)
        message = str(caught.value)
        assert message.startswith("redis checkpoint store: invalid URL: ")
        assert said in message
        assert "s3cret" not in message


@pytest.mark.parametrize(
    ("dsn", "said"),
    [
        ("postgresql://app:s3cret@db:port/ck", "the port must be a number"),
        ("postgres://app:s3cret@db/ck?sslmode=bogus", "sslmode 'bogus' is not one of"),
    ],
)
def test_a_dsn_asyncpg_cannot_use_is_refused(dsn: str, said: str) -> None:
    for make in (postgres_store.PostgresCheckpointStore, open_store):
        with pytest.raises(ConfigError) as caught:
            make(dsn)
        message = str(caught.value)
        assert message.startswith("postgres checkpoint store: invalid DSN: ")
        assert said in message
        assert "s3cret" not in message


def test_urls_the_drivers_take_still_make_stores() -> None:
    assert open_store("redis://:s3cret@cache:6379/3").location == "redis://:***@cache:6379/3"
    assert redis_store.RedisCheckpointStore("unix:///run/redis.sock?db=1").name == "redis"
    assert open_store("postgresql://db1:5432,db2:5433/ck").name == "postgres"
