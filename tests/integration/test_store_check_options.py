"""`agentmesh resume` checks a plan's checkpoint store with the store's own URL options.

A Redis store with a key prefix and a Postgres store in a schema name them in their URL
(``?prefix=``, ``?schema=``); the drivers do not know them, so the check takes them out before
connecting (redis-py raised ``TypeError: unexpected keyword argument 'prefix'``).
"""

from __future__ import annotations

from agentmesh.collector.cli.checkpoint_store_check import store_problem


def test_a_redis_store_with_a_prefix_is_checked(redis_address: tuple[str, int]) -> None:
    host, port = redis_address
    assert store_problem(f"redis://{host}:{port}/14?prefix=team:a") is None
    assert store_problem(f"redis://{host}:{port}/14", connect_url=None) is None


def test_a_postgres_store_in_a_schema_is_checked(postgres_address: tuple[str, int]) -> None:
    host, port = postgres_address
    assert store_problem(f"postgresql://postgres@{host}:{port}/test?schema=team_a") is None


def test_a_store_that_does_not_answer_is_still_named(unused_tcp_port: int) -> None:
    problem = store_problem(f"redis://127.0.0.1:{unused_tcp_port}/0?prefix=team:a", timeout=2.0)
    assert problem is not None
    assert f"redis://127.0.0.1:{unused_tcp_port}/0?prefix=team:a" in problem
