"""A Redis URL or PostgreSQL DSN the driver cannot use is a ConfigError, wherever it is given.

Not a lost connection (retried for ever), not a bare ``ValueError`` with a traceback: the
settings refuse it at load (naming the variable), and the places that hand a URL to a driver
refuse it too, for URLs that did not come through the settings.
"""

from __future__ import annotations

import asyncpg
import pytest
from pydantic import SecretStr

from agentmesh.collector.hot_state import shared_document
from agentmesh.collector.preflight.remote import check_redis
from agentmesh.collector.recovery.redis_control_state import RedisControlState
from agentmesh.collector.settings import CollectorSettings
from agentmesh.collector.store.postgres_errors import connection_lost, store_error
from agentmesh.collector.store.postgres_store import PostgresStore
from agentmesh.core.errors import ConfigError, StoreError, StoreUnavailableError

_REDIS = "AGENTMESH_COLLECTOR_REDIS_URL"
_DSN = "AGENTMESH_COLLECTOR_POSTGRES_DSN"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:6379/7", "expected a redis://, rediss:// or unix:// URL"),
        ("notaurl", "expected a redis://, rediss:// or unix:// URL"),
        ("redis://127.0.0.1:6379/abc", "the database must be a number"),
        ("redis://:s3cret@127.0.0.1:abc/0", "Port could not be cast to integer"),
        ("redis://127.0.0.1:6379/0?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
        ("", "empty: give a URL like redis://host:6379/0, or unset it"),
    ],
)
def test_the_settings_refuse_a_redis_url_naming_the_variable(
    url: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_REDIS, url)
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.load()
    message = str(caught.value)
    assert message.startswith(f"invalid configuration: {_REDIS}='***': ")
    assert said in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/9", "rediss://:pw@cache:6380", "unix:///run/r.sock?db=2"]
)
def test_the_settings_take_the_urls_redis_py_takes(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_REDIS, url)
    loaded = CollectorSettings.load().redis_url
    assert loaded is not None
    assert loaded.get_secret_value() == url


def test_the_settings_refuse_a_dsn_asyncpg_cannot_use_when_the_store_is_postgres(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(_DSN, "mysql://app:s3cret@127.0.0.1/qa")
    assert CollectorSettings.load(store="duckdb").store == "duckdb"  # not used: not refused
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.load(store="postgres")
    message = str(caught.value)
    assert message.startswith(f"invalid configuration: {_DSN}='***': ")
    assert "expected a postgresql:// or postgres:// URL" in message
    assert "s3cret" not in message


def test_pool_sizes_that_do_not_fit_name_both_variables() -> None:
    assert CollectorSettings.load(store="memory", postgres_pool_min_size=20).store == "memory"
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.load(store="postgres", postgres_pool_min_size=20)
    assert str(caught.value) == (
        "invalid configuration: AGENTMESH_COLLECTOR_POSTGRES_POOL_MIN_SIZE (20) must not be above "
        "AGENTMESH_COLLECTOR_POSTGRES_POOL_MAX_SIZE (10): the pool keeps at least the one open "
        "and opens at most the other"
    )


def test_a_dsn_asyncpg_refuses_is_a_config_error_not_a_lost_connection() -> None:
    refused = asyncpg.ClientConfigurationError(
        'invalid DSN: scheme is expected to be either "postgresql" or "postgres", got \'mysql\''
    )
    assert not connection_lost(refused)  # not tried again on a new connection
    error = store_error(refused, "127.0.0.1:5432")
    assert isinstance(error, ConfigError)
    assert not isinstance(error, StoreError)
    assert str(error) == (
        "invalid configuration: PostgreSQL connection: invalid DSN: scheme is expected to be "
        'either "postgresql" or "postgres", got \'mysql\''
    )
    # the rest is as it was
    assert isinstance(store_error(ConnectionResetError(104, "reset"), "h:1"), StoreUnavailableError)
    assert connection_lost(asyncpg.InterfaceError("connection is closed"))


async def test_opening_a_store_on_a_dsn_asyncpg_refuses_raises_a_config_error() -> None:
    store = PostgresStore("mysql://x@127.0.0.1/qa")  # built directly: no settings checked it
    with pytest.raises(
        ConfigError, match="invalid configuration: PostgreSQL connection: invalid DSN"
    ):
        await store.open()
    await store.close()


def test_a_shared_document_refuses_a_redis_url_it_cannot_use() -> None:
    with pytest.raises(ConfigError) as caught:
        RedisControlState("redis://127.0.0.1:6379/abc")
    assert str(caught.value) == (
        "invalid configuration: the Redis URL of the control document: the database must be a "
        "number, like redis://host:6379/0"
    )
    with pytest.raises(ConfigError, match="invalid configuration: Redis URL: Invalid value"):
        shared_document._client("redis://127.0.0.1:6379/0?socket_timeout=soon", 1.0, 1.0)  # pyright: ignore[reportPrivateUsage]


async def test_check_redis_reports_a_url_redis_py_refuses() -> None:
    # settings built without validation (as an embedding application may): the check says so
    settings = CollectorSettings.model_construct(
        redis_url=SecretStr("http://127.0.0.1:6379/7"), redis_timeout_seconds=1.0
    )
    finding = await check_redis(settings)
    assert finding.check == "redis"
    assert finding.verdict == "fail"
    assert finding.detail.startswith(f"invalid configuration: {_REDIS}: Redis URL must specify")


def test_detector_state_in_redis_without_redis_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTMESH_REDIS_URL", raising=False)
    monkeypatch.delenv("AGENTMESH_COLLECTOR_REDIS_URL", raising=False)
    assert CollectorSettings.load(store="memory", detector_state="auto").redis_url is None
    with pytest.raises(ConfigError) as caught:
        CollectorSettings.load(store="memory", detector_state="redis")
    assert str(caught.value) == (
        "invalid configuration: AGENTMESH_COLLECTOR_DETECTOR_STATE=redis needs "
        "AGENTMESH_COLLECTOR_REDIS_URL: detector state would otherwise not be saved at all "
        "(use `auto`, `file` or `off` without Redis)"
    )
    with_redis = CollectorSettings.load(
        store="memory", detector_state="redis", redis_url="redis://127.0.0.1:6379/0"
    )
    assert with_redis.detector_state == "redis"
