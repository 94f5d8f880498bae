"""``agentmesh checkpoints``: look into a checkpoint store and clean it up from the shell.

The store is the one the savers, the CrewAI persistence and the handoff checkpoints write to,
named by a URL (``--url``, else ``AGENTMESH_CHECKPOINT_URL``): ``duckdb:///path.duckdb``,
``redis://host:6379/0`` (``?prefix=…`` for another key prefix), ``postgresql://user@host/db``
(``?schema=…`` for another schema). Subcommands:

* ``list``: the newest checkpoints (of one thread with ``--thread``), with step, source, run,
  channels, value bytes and pending writes; to a pipe or a file, one line per checkpoint;
* ``prune THREAD…``: keep only the newest checkpoint of each namespace of these threads (and
  the values it refers to);
* ``delete THREAD…``: delete these threads entirely (prune and delete say how many
  checkpoints went, and name each thread that does not exist: exit code 1);
* ``expire --older-than 30d``: delete the threads whose newest checkpoint is older;
* ``size``: the bytes the store holds.

DuckDB allows one process to open a file for writing: run these while the app is stopped (the
store says so when another process holds the file). Needs ``agentmesh-checkpoint`` with the
backend's extra.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentmesh.collector.durations import parse_when
from agentmesh.core import ConfigError

if TYPE_CHECKING:
    from agentmesh.checkpoint.store.base import CheckpointStore, StoredCheckpoint

__all__ = ["add_checkpoints_command"]

_URL_VARIABLE = "AGENTMESH_CHECKPOINT_URL"
_T = TypeVar("_T")


def add_checkpoints_command(parser: argparse.ArgumentParser) -> None:
    """Declare ``agentmesh checkpoints`` and its subcommands.

    Args:
        parser: The command's parser.
    """
    commands = parser.add_subparsers(dest="checkpoints_command", required=True)
    listing = commands.add_parser(
        "list",
        help="the newest checkpoints, of every thread or of one",
        description="List checkpoints newest first: thread, namespace, id, step, source, run, "
        "channels, bytes of their values and pending writes.",
    )
    listing.add_argument("--thread", help="only this thread")
    listing.add_argument("--namespace", help='only this namespace ("" for the root graph)')
    listing.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=_list)
    prune = commands.add_parser(
        "prune",
        help="keep only the newest checkpoint of each namespace of these threads",
        description="Delete every checkpoint of these threads but the newest of each "
        "namespace, with the values and pending writes only they refer to. Says how many "
        "checkpoints went; a thread that does not exist is named (exit code 1).",
    )
    prune.add_argument("threads", nargs="+", metavar="THREAD")
    prune.set_defaults(handler=_prune)
    delete = commands.add_parser(
        "delete",
        help="delete these threads entirely",
        description="Delete every checkpoint, value and pending write of these threads. "
        "Says how many went; a thread that does not exist is named (exit code 1).",
    )
    delete.add_argument("threads", nargs="+", metavar="THREAD")
    delete.set_defaults(handler=_delete)
    expire = commands.add_parser(
        "expire",
        help="delete the threads whose newest checkpoint is older than a time",
        description="Delete the threads whose newest checkpoint was written before a time "
        "(retention: run it from cron, or a Kubernetes CronJob).",
    )
    expire.add_argument(
        "--older-than",
        required=True,
        metavar="WHEN",
        help="this long ago (30d, 12h) or a date-time (2026-11-01T00:00:00Z)",
    )
    expire.set_defaults(handler=_expire)
    size = commands.add_parser(
        "size",
        help="the bytes the store holds",
        description="The bytes the store's checkpoints, values and writes take (DuckDB folds "
        "its write-ahead log into the file first).",
    )
    size.set_defaults(handler=_size)
    for sub in (listing, prune, delete, expire, size):
        sub.add_argument(
            "--url",
            help=f"the checkpoint store ({_URL_VARIABLE}): duckdb:///path.duckdb, "
            "redis://host:6379/0, postgresql://user@host/db (add ?prefix=… or ?schema=… for "
            "a store opened with another key prefix or schema)",
        )


def _url(args: argparse.Namespace) -> str:
    url = args.url or os.environ.get(_URL_VARIABLE, "").strip()
    if not url:
        raise ConfigError(
            f"no checkpoint store: pass --url or set {_URL_VARIABLE} "
            "(duckdb:///path.duckdb, redis://host:6379/0, postgresql://user@host/db)"
        )
    return str(url)


def _on_store(args: argparse.Namespace, work: Callable[[CheckpointStore], Awaitable[_T]]) -> _T:
    """Open the store the arguments name, run ``work`` on it, close it."""
    try:
        from agentmesh.checkpoint.store.factory import open_store
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "agentmesh checkpoints needs agentmesh-checkpoint: pip install "
            "'agentmesh-checkpoint[duckdb]' (or [redis], [postgres])"
        ) from exc
    url = _url(args)
    _existing_duckdb_store(url)
    store = open_store(url)

    async def run() -> _T:
        async with store as opened:
            return await work(opened)

    return asyncio.run(run())


def _existing_duckdb_store(url: str) -> None:
    """Refuse a DuckDB path that is not a checkpoint store: these commands never create one.

    Opening the store would create a missing file (and its directory), or add the checkpoint
    tables to another DuckDB file (the collector's, say).
    """
    scheme, _, rest = url.partition("://")
    if scheme.lower() != "duckdb" or not rest:
        return
    path = Path(rest)
    if not path.exists():
        raise ConfigError(f"no DuckDB file at {path}: no checkpoints to read there")
    import duckdb

    from agentmesh.checkpoint.store._duckdb_schema import MIGRATIONS_TABLE

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return  # held by a process, or not DuckDB: opening the store says which, in words
    try:
        tables = {
            row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
    finally:
        con.close()
    if tables and MIGRATIONS_TABLE not in tables:
        raise ConfigError(
            f"{path} holds no checkpoints (no {MIGRATIONS_TABLE} table): another DuckDB file, "
            "such as the collector's? Its tables are left as they are"
        )


def _row(stored: StoredCheckpoint) -> dict[str, Any]:
    record = stored.record
    metadata = record.metadata
    return {
        "thread_id": record.thread_id,
        "namespace": record.namespace,
        "checkpoint_id": record.checkpoint_id,
        "parent_id": record.parent_id,
        "step": metadata.get("step"),
        "source": metadata.get("source"),
        "run_id": record.run_id,
        "channels": len(record.channel_versions),
        "value_bytes": sum(len(blob.data) for blob in stored.values.values()),
        "pending_writes": len(stored.writes),
    }


def _list(args: argparse.Namespace) -> int:
    from agentmesh.checkpoint.store.base import ListQuery

    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, not {args.limit}")
    query = ListQuery(thread_id=args.thread, namespace=args.namespace, limit=args.limit)

    async def read(store: CheckpointStore) -> list[dict[str, Any]]:
        return [_row(stored) async for stored in store.list(query)]

    rows = _on_store(args, read)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    _print_table(rows)
    return 0


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    from agentmesh.collector.cli.render import print_table, printable

    console = Console()
    if not rows:
        console.print("no checkpoints")
        return
    # columns that say nothing for these rows (no subgraphs, no run ids) are left out
    with_ns = any(row["namespace"] for row in rows)
    with_run = any(row["run_id"] for row in rows)
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")

    def widest(key: str) -> int:
        return max(len(str(row[key] or "")) for row in rows)

    # ids are printed whole (they are what you copy into the next command); the rest squeezes
    table.add_column("thread", no_wrap=True, min_width=min(widest("thread_id"), 40))
    if with_ns:
        table.add_column("namespace", overflow="fold")
    table.add_column("checkpoint", no_wrap=True, min_width=widest("checkpoint_id"))
    table.add_column("step", justify="right")
    table.add_column("source")
    if with_run:
        table.add_column("run", no_wrap=True, min_width=min(widest("run_id"), 36))
    table.add_column("channels", justify="right")
    table.add_column("bytes", justify="right")
    table.add_column("writes", justify="right")
    for row in rows:
        cells = [row["thread_id"]]
        if with_ns:
            cells.append(row["namespace"] or '""')
        cells += [
            row["checkpoint_id"],
            "" if row["step"] is None else str(row["step"]),
            str(row["source"] or ""),
        ]
        if with_run:
            cells.append(row["run_id"] or "")
        cells += [str(row["channels"]), f"{row['value_bytes']:,}", str(row["pending_writes"])]
        table.add_row(*map(printable, cells))  # ids and names are the app's: print them as text
    print_table(console, table)


async def _exists(store: CheckpointStore, thread_id: str) -> bool:
    from agentmesh.checkpoint.store.base import ListQuery

    async for _ in store.list(ListQuery(thread_id=thread_id, limit=1)):
        return True
    return False


def _missing(threads: list[str]) -> int:
    """Name the threads that do not exist (stderr); the exit code: 1 when there are any."""
    for thread_id in threads:
        print(f"no such thread: {thread_id}", file=sys.stderr)
    return 1 if threads else 0


def _prune(args: argparse.Namespace) -> int:
    threads = list(dict.fromkeys(args.threads))

    async def prune(store: CheckpointStore) -> tuple[list[str], int]:
        found = [thread_id for thread_id in threads if await _exists(store, thread_id)]
        return found, await store.prune(found, keep_latest=True)

    found, deleted = _on_store(args, prune)
    print(
        f"deleted {deleted:,} checkpoint(s) of {len(found)} thread(s), keeping the newest "
        "checkpoint of each namespace"
    )
    return _missing([thread_id for thread_id in threads if thread_id not in found])


def _delete(args: argparse.Namespace) -> int:
    threads = list(dict.fromkeys(args.threads))

    async def delete(store: CheckpointStore) -> dict[str, int]:
        return {thread_id: await store.delete_thread(thread_id) for thread_id in threads}

    deleted = _on_store(args, delete)
    found = [thread_id for thread_id in threads if deleted[thread_id]]
    print(
        f"deleted {len(found)} thread(s) ({sum(deleted.values()):,} checkpoint(s))"
        if found
        else "deleted 0 threads"
    )
    return _missing([thread_id for thread_id in threads if not deleted[thread_id]])


def _expire(args: argparse.Namespace) -> int:
    now = time.time()
    cut = parse_when(str(args.older_than), "--older-than", now=now)
    if cut >= now:
        raise ConfigError(f"--older-than {args.older_than}: that is not in the past")

    async def expire(store: CheckpointStore) -> int:
        return await store.expire(cut)

    deleted = _on_store(args, expire)
    when = datetime.fromtimestamp(cut, UTC).isoformat(timespec="seconds")
    print(f"deleted {deleted:,} thread(s) whose newest checkpoint was written before {when}")
    return 0


def _size(args: argparse.Namespace) -> int:
    async def size(store: CheckpointStore) -> int:
        return await store.size_bytes()

    print(f"{_on_store(args, size):,} bytes")
    return 0
