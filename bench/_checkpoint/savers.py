"""The savers under test, one table entry each, and the storage each config run gets.

Every config run (a state size x a thread length) gives every saver fresh storage of its own,
opened with the saver's ordinary ``from_conn_string`` context manager, measured once the
saver is closed, then dropped:

- Postgres savers: a schema of their own, ``<tag>_<config>_<saver>``, in the target database
  (the official ``PostgresSaver`` reaches it through ``options=-c search_path=...``); bytes:
  ``pg_total_relation_size`` (heap, indexes, TOAST) summed over the schema's tables.
- Redis: a key prefix of its own; bytes: ``MEMORY USAGE key SAMPLES 0`` summed over its keys.
- DuckDB / SQLite: a file of their own in a temporary directory; bytes: the file (plus any
  WAL left) after close (DuckDB checkpoints on close, SQLite folds its WAL back). Our DuckDB
  saver caches each thread in memory and queues its writes (write-behind, group commit; see
  ``agentmesh.checkpoint.store.duckdb``): its ``put`` is the time to update the cache and
  queue, its ``get`` after its own ``put`` is a cache hit; everything is committed by close,
  before the bytes are measured. The official SqliteSaver commits every call.
- ``langgraph_memory`` (langgraph's ``InMemorySaver``, only with ``--savers``): no bytes.

Adding a saver is one :class:`SaverSpec` in :data:`SPECS`.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

Group = Literal["ours", "official", "reference"]


@dataclass(frozen=True)
class Backends:
    """Where storage lives for this run.

    Attributes:
        postgres_dsn: libpq URL of the target database.
        redis_url: ``redis://host:port/db``.
        workdir: A temporary directory for files.
        tag: Unique to the run (prefix of schemas and keys).
    """

    postgres_dsn: str
    redis_url: str
    workdir: Path
    tag: str


class Storage(Protocol):
    """One saver's storage for one config run."""

    def open(self) -> contextlib.AbstractContextManager[Any]:
        """Return a context manager yielding a ready sync saver."""
        ...

    def stored_bytes(self) -> int | None:
        """Return the bytes stored (called after the saver is closed)."""
        ...

    def drop(self) -> None:
        """Delete everything this storage created."""
        ...


def _redis(url: str) -> Any:
    redis = importlib.import_module("redis")
    return redis.Redis.from_url(url)


def _psycopg() -> Any:
    return importlib.import_module("psycopg")


def _pg_admin(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    psycopg = _psycopg()
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchone() if cursor.description is not None else None


@dataclass
class PostgresSchema:
    """A schema of its own for a Postgres saver.

    Attributes:
        dsn: The target database.
        schema: The schema's name.
        opener: Given the DSN and the schema, returns the saver's context manager.
    """

    dsn: str
    schema: str
    opener: Callable[[str, str], contextlib.AbstractContextManager[Any]]

    def open(self) -> contextlib.AbstractContextManager[Any]:
        """Create the schema and open the saver in it."""
        _pg_admin(self.dsn, f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        return self.opener(self.dsn, self.schema)

    def stored_bytes(self) -> int | None:
        """Sum ``pg_total_relation_size`` over the schema's tables."""
        row = _pg_admin(
            self.dsn,
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'm')",
            (self.schema,),
        )
        return int(row[0])

    def drop(self) -> None:
        """Drop the schema."""
        _pg_admin(self.dsn, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


@dataclass
class RedisPrefix:
    """A key prefix of its own for a Redis saver.

    Attributes:
        url: The Redis URL.
        prefix: The prefix.
        opener: Given the URL and the prefix, returns the saver's context manager.
    """

    url: str
    prefix: str
    opener: Callable[[str, str], contextlib.AbstractContextManager[Any]]

    def open(self) -> contextlib.AbstractContextManager[Any]:
        """Open the saver with the prefix."""
        return self.opener(self.url, self.prefix)

    def stored_bytes(self) -> int | None:
        """Sum ``MEMORY USAGE`` over the prefix's keys."""
        client = _redis(self.url)
        try:
            total = 0
            for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
                used = client.execute_command("MEMORY", "USAGE", key, "SAMPLES", "0")
                total += int(used or 0)
            return total
        finally:
            client.close()

    def drop(self) -> None:
        """Delete the prefix's keys."""
        client = _redis(self.url)
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.unlink(*keys[start : start + 500])
        finally:
            client.close()


@dataclass
class File:
    """A file of its own for an embedded saver.

    Attributes:
        path: The database file.
        opener: Given the path, returns the saver's context manager.
    """

    path: Path
    opener: Callable[[Path], contextlib.AbstractContextManager[Any]]

    def _files(self) -> list[Path]:
        return [p for p in self.path.parent.glob(self.path.name + "*") if p.is_file()]

    def open(self) -> contextlib.AbstractContextManager[Any]:
        """Open the saver on the file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self.opener(self.path)

    def stored_bytes(self) -> int | None:
        """Return the size of the file and of any WAL next to it (not SQLite's ``-shm``)."""
        return sum(p.stat().st_size for p in self._files() if not p.name.endswith("-shm"))

    def drop(self) -> None:
        """Delete the file and its companions."""
        for p in self._files():
            p.unlink(missing_ok=True)
        shutil.rmtree(self.path.parent / (self.path.name + ".tmp"), ignore_errors=True)


@dataclass
class NoStorage:
    """In-process savers: nothing to measure or drop.

    Attributes:
        opener: Returns the saver's context manager.
    """

    opener: Callable[[], contextlib.AbstractContextManager[Any]]

    def open(self) -> contextlib.AbstractContextManager[Any]:
        """Open the saver."""
        return self.opener()

    def stored_bytes(self) -> int | None:
        """Nothing is stored outside the process."""
        return None

    def drop(self) -> None:
        """Nothing to drop."""


@contextlib.contextmanager
def _setup(cm: contextlib.AbstractContextManager[Any]) -> Generator[Any]:
    """Enter a saver's context manager and call its ``setup()`` when it has one."""
    with cm as saver:
        setup = getattr(saver, "setup", None)
        if callable(setup):
            setup()
        yield saver


def _cls(module: str, name: str) -> Any:
    return getattr(importlib.import_module(module), name)


def _libpq_with_search_path(dsn: str, schema: str) -> str:
    conninfo = importlib.import_module("psycopg.conninfo")
    return conninfo.make_conninfo(dsn, options=f"-c search_path={schema}")


OURS = "agentmesh.checkpoint.langgraph"


def _official_postgres(b: Backends, name: str) -> Storage:
    def opener(dsn: str, schema: str) -> contextlib.AbstractContextManager[Any]:
        cls = _cls("langgraph.checkpoint.postgres", "PostgresSaver")
        return _setup(cls.from_conn_string(_libpq_with_search_path(dsn, schema)))

    return PostgresSchema(b.postgres_dsn, f"{b.tag}_{name}_official_pg".lower(), opener)


def _official_sqlite(b: Backends, name: str) -> Storage:
    def opener(path: Path) -> contextlib.AbstractContextManager[Any]:
        cls = _cls("langgraph.checkpoint.sqlite", "SqliteSaver")
        return _setup(cls.from_conn_string(str(path)))

    return File(b.workdir / name / "official.sqlite", opener)


def _ours_postgres(b: Backends, name: str) -> Storage:
    def opener(dsn: str, schema: str) -> contextlib.AbstractContextManager[Any]:
        return _setup(_cls(OURS, "PostgresSaver").from_conn_string(dsn, schema=schema))

    return PostgresSchema(b.postgres_dsn, f"{b.tag}_{name}_ours_pg".lower(), opener)


def _ours_redis(b: Backends, name: str) -> Storage:
    def opener(url: str, prefix: str) -> contextlib.AbstractContextManager[Any]:
        return _setup(_cls(OURS, "RedisSaver").from_conn_string(url, prefix=prefix))

    return RedisPrefix(b.redis_url, f"{b.tag}:{name}:ours", opener)


def _ours_duckdb(b: Backends, name: str) -> Storage:
    def opener(path: Path) -> contextlib.AbstractContextManager[Any]:
        return _setup(_cls(OURS, "DuckDBSaver").from_conn_string(str(path)))

    return File(b.workdir / name / "ours.duckdb", opener)


def _memory(b: Backends, name: str) -> Storage:
    def opener() -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext(_cls("langgraph.checkpoint.memory", "InMemorySaver")())

    return NoStorage(opener)


@dataclass(frozen=True)
class SaverSpec:
    """One saver under test.

    Attributes:
        name: Its key in the JSON line.
        label: Its name in the table.
        group: ``ours``, ``official`` or ``reference``.
        module: The module the saver class lives in.
        attr: The saver class's name there.
        make: Builds its storage for one config run (backends, config name).
    """

    name: str
    label: str
    group: Group
    module: str
    attr: str
    make: Callable[[Backends, str], Storage]

    def missing(self) -> str | None:
        """Return why the saver cannot run here, or ``None`` when it can."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            return f"{self.module} not importable ({exc})"
        if not hasattr(module, self.attr):
            return f"{self.module}.{self.attr} missing"
        return None


_LG = "langgraph.checkpoint"
SPECS: tuple[SaverSpec, ...] = (
    SaverSpec("agentmesh_postgres", "ours Postgres", "ours", OURS, "PostgresSaver",
              _ours_postgres),
    SaverSpec("official_postgres", "official Postgres", "official", f"{_LG}.postgres",
              "PostgresSaver", _official_postgres),
    SaverSpec("agentmesh_redis", "ours Redis", "ours", OURS, "RedisSaver", _ours_redis),
    SaverSpec("agentmesh_duckdb", "ours DuckDB", "ours", OURS, "DuckDBSaver", _ours_duckdb),
    SaverSpec("official_sqlite", "official SQLite", "official", f"{_LG}.sqlite", "SqliteSaver",
              _official_sqlite),
    SaverSpec("langgraph_memory", "InMemorySaver", "reference", f"{_LG}.memory",
              "InMemorySaver", _memory),
)  # fmt: skip
DEFAULT = tuple(s.name for s in SPECS if s.group != "reference")
BY_NAME = {s.name: s for s in SPECS}
