"""Redis URLs and PostgreSQL DSNs: refused in words exactly when the drivers cannot use them.

Each case is also given to the driver's own parser (redis-py's ``parse_url``, asyncpg's DSN
parser), so the checks never refuse what the driver accepts, nor accept what it refuses.
"""

from __future__ import annotations

from typing import Any

import pytest
from asyncpg.connect_utils import _parse_connect_dsn_and_args
from redis.asyncio.connection import parse_url

from agentmesh.core.connection_urls import postgres_dsn_problem, redis_url_problem

REDIS_ACCEPTED: dict[str, int | None] = {
    # URL: the database redis-py selects (None: its default, 0)
    "redis://127.0.0.1:6379/0": 0,
    "redis://:s3cret@cache.internal:6380/2": 2,
    "REDIS://cache/3": 3,
    "rediss://cache/1": 1,
    "redis://cache": None,
    "redis://cache/": None,
    "redis://cache/5/": 5,
    "redis://cache/abc?db=4": 4,  # the query wins: the path is not read
    "unix:///run/redis/redis.sock?db=2": 2,
    "redis://cache/0?socket_timeout=1.5": 0,
}

REDIS_REFUSED: dict[str, str] = {
    "http://127.0.0.1:6379/7": "expected a redis://, rediss:// or unix:// URL",
    "notaurl": "expected a redis://, rediss:// or unix:// URL",
    "redis:cache/0": "expected a redis://, rediss:// or unix:// URL",
    "redis://cache:port/0": "Port could not be cast to integer",
    "redis://cache:99999/0": "Port out of range",
    "redis://[::1/0": "Invalid IPv6 URL",
    "redis://cache/0?db=x": "the db query parameter must be a number",
    "unix://": "needs the socket's path",
}

REDIS_SILENTLY_ELSEWHERE: dict[str, int | None] = {
    # redis-py takes these without a word, and selects another database than written
    "redis://127.0.0.1:6379/abc": None,
    "redis://cache/1/2": 12,
}


@pytest.mark.parametrize(("url", "db"), REDIS_ACCEPTED.items())
def test_a_redis_url_the_driver_reads_as_written_is_accepted(url: str, db: int | None) -> None:
    assert redis_url_problem(url) is None
    assert parse_url(url).get("db") == db


@pytest.mark.parametrize(("url", "said"), REDIS_REFUSED.items())
def test_a_redis_url_the_driver_refuses_is_refused_in_words(url: str, said: str) -> None:
    problem = redis_url_problem(url)
    assert problem is not None
    assert said in problem
    if url.startswith("unix"):
        return  # redis-py takes unix:// alone, and fails only when connecting
    try:
        parse_url(url)
    except ValueError:
        return  # redis-py refuses it too, at from_url, with a traceback
    pytest.fail(f"redis-py takes {url!r}")


@pytest.mark.parametrize(("url", "db"), REDIS_SILENTLY_ELSEWHERE.items())
def test_a_database_that_is_not_a_number_is_refused(url: str, db: int | None) -> None:
    assert parse_url(url).get("db") == db  # what redis-py would quietly do
    assert redis_url_problem(url) == "the database must be a number, like redis://host:6379/0"


def _asyncpg_refuses(dsn: str) -> bool:
    arguments: dict[str, Any] = dict.fromkeys(
        (
            "host", "port", "user", "password", "passfile", "database", "ssl", "service",
            "servicefile", "direct_tls", "server_settings", "target_session_attrs",
            "krbsrvname", "gsslib",
        )
    )  # fmt: skip
    try:
        _parse_connect_dsn_and_args(dsn=dsn, **arguments)
    except Exception:
        return True
    return False


POSTGRES_ACCEPTED = [
    "",  # everything from the PG* variables
    "postgresql://agentmesh@127.0.0.1:5432/agentmesh",
    "postgres://app:s3cret@db.internal/agentmesh",
    "POSTGRESQL://db.internal/agentmesh",
    "postgresql://db1:5432,db2:5433/agentmesh?target_session_attrs=read-write",
    "postgresql://[::1]:5432/agentmesh",
    "postgresql:///agentmesh?host=/var/run/postgresql",
    "postgresql://%2Fvar%2Frun%2Fpostgresql/agentmesh",
    "postgresql://db/agentmesh?sslmode=require&application_name=collector",
    "postgresql://db/agentmesh?port=5432,5433",
]

POSTGRES_REFUSED: dict[str, str] = {
    "mysql://x@127.0.0.1/qa": "expected a postgresql:// or postgres:// URL",
    "notaurl": "expected a postgresql:// or postgres:// URL",
    "host=db dbname=agentmesh": "key=value DSNs are not supported",
    "postgresql://db:port/agentmesh": "the port must be a number",
    "postgresql://db1,,db2/agentmesh": "the list of hosts has an empty item",
    "postgresql://[::1/agentmesh": "Invalid IPv6 URL",
    "postgresql://db/agentmesh?sslmode": "the query string must be key=value pairs",
    "postgresql://db/agentmesh?sslmode=bogus": "sslmode 'bogus' is not one of",
}

POSTGRES_REFUSED_ALTHOUGH_PARSED = {
    # asyncpg's parser lets these through; no connection can ever be made with them
    "postgresql://db:99999/agentmesh": "the port must be a number from 1 to 65535",
    "postgresql://db/agentmesh?port=x": "the port must be a number from 1 to 65535",
}


@pytest.mark.parametrize("dsn", POSTGRES_ACCEPTED)
def test_a_dsn_asyncpg_takes_is_accepted(dsn: str) -> None:
    assert not _asyncpg_refuses(dsn)
    assert postgres_dsn_problem(dsn) is None


@pytest.mark.parametrize(("dsn", "said"), POSTGRES_REFUSED.items())
def test_a_dsn_asyncpg_refuses_is_refused_in_words(dsn: str, said: str) -> None:
    assert _asyncpg_refuses(dsn)
    problem = postgres_dsn_problem(dsn)
    assert problem is not None
    assert said in problem


@pytest.mark.parametrize(("dsn", "said"), POSTGRES_REFUSED_ALTHOUGH_PARSED.items())
def test_a_port_no_connection_can_use_is_refused(dsn: str, said: str) -> None:
    assert postgres_dsn_problem(dsn) == said


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@cache:port/0",
        "http://user:s3cret@cache/0",
        "postgresql://app:s3cret@db:port/x",
        "mysql://app:s3cret@db/x",
        "postgresql://app:p@s3cret@db:5432/x?sslmode=bogus",
    ],
)
def test_a_password_is_never_repeated(url: str) -> None:
    problem = redis_url_problem(url) if "redis" in url or "http" in url else None
    problem = problem or postgres_dsn_problem(url)
    assert problem is not None
    assert "s3cret" not in problem
