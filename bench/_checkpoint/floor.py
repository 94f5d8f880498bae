"""The machine's round-trip floor: what one trivial call to each server costs right now.

``SELECT 1`` over one psycopg connection (autocommit, as the official PostgresSaver uses it),
an ``INSERT`` of one 1 KB row into a table of its own on that connection (its commit waits for
the write-ahead log to reach the disk, as every durable put's does) and ``PING`` over one
redis-py connection, alternated, p50 in µs. A saver cannot answer a call that needs its server
in less, nor store a checkpoint durably in less than the commit; on a loaded machine the floor
rises, which puts the savers' figures in context.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

from _checkpoint.stats import percentile


def measure(postgres_dsn: str, redis_url: str, calls: int = 200) -> dict[str, float | None]:
    """Return the p50 of each floor in µs, by name (``None`` when the server is unreachable)."""
    clients: dict[str, Any] = {}
    samples: dict[str, list[int]] = {
        "postgres_select_1": [],
        "postgres_commit": [],
        "redis_ping": [],
    }
    table = f"ambench_floor_{os.getpid()}"
    payload = os.urandom(1000)
    try:
        try:
            psycopg = importlib.import_module("psycopg")
            conn = psycopg.connect(postgres_dsn, autocommit=True)
            clients["postgres_select_1"] = conn
            conn.execute(f"CREATE TABLE {table} (v bytea)")
            clients["postgres_commit"] = conn
        except Exception:  # noqa: BLE001 - the floor is informative only
            pass
        try:
            redis = importlib.import_module("redis")
            client = redis.Redis.from_url(redis_url)
            client.ping()
            clients["redis_ping"] = client
        except Exception:  # noqa: BLE001 - the floor is informative only
            pass
        for _ in range(calls):
            for name, client in clients.items():
                started = time.perf_counter_ns()
                if name == "redis_ping":
                    client.ping()
                elif name == "postgres_commit":
                    client.execute(f"INSERT INTO {table} VALUES (%s)", (payload,))
                else:
                    client.execute("SELECT 1").fetchone()
                samples[name].append(time.perf_counter_ns() - started)
    finally:
        if "postgres_commit" in clients:
            clients["postgres_commit"].execute(f"DROP TABLE IF EXISTS {table}")
        for client in set(clients.values()):
            client.close()
    out: dict[str, float | None] = {}
    for name, values in samples.items():
        p50 = percentile(values, 0.5)
        out[name] = None if p50 is None else round(p50 / 1000, 1)
    return out


def commit_floor_line(out: dict[str, Any], floor_us: dict[str, float | None]) -> str | None:
    """Compare half the official Postgres saver's 1 KB put with one durable commit, in words.

    A put that keeps its checkpoint once it returns waits for at least one commit's flush of
    the write-ahead log; when half the official saver's put is less than that, the put goal at
    that size asks for less than the server's floor.
    """
    commit = floor_us.get("postgres_commit")
    official = out.get("p50_put_us", {}).get("official_postgres", {}).get("1KB")
    if commit is None or official is None:
        return None
    half = official / 2
    verdict = "below" if half < commit else "above"
    return (
        f"commit floor: half the official Postgres saver's 1KB put ({half:.0f} µs) is {verdict} "
        f"one durable one-row INSERT on this server ({commit:.0f} µs)"
    )
