"""``agentmesh prune``: delete the stored runs that ended before a time, once.

The collector does this by itself with a retention (``AGENTMESH_COLLECTOR_RETENTION_DAYS``);
this command is for a one-off clean-up, or for a store no collector prunes. DuckDB allows one
writing process: stop the collector first (Postgres needs no such care).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime

from agentmesh.collector.cli.store_options import add_store_options, store_settings
from agentmesh.collector.durations import parse_when
from agentmesh.collector.store.base import Pruned
from agentmesh.core import ConfigError

__all__ = ["add_prune_command"]


def add_prune_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh prune``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument(
        "--older-than",
        required=True,
        metavar="WHEN",
        help="delete the runs that ended this long ago or earlier (30d, 12h), or before this "
        "date-time (2026-11-01T00:00:00Z)",
    )
    add_store_options(parser)
    parser.set_defaults(handler=_prune)


def _prune(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agentmesh.collector.store.factory import open_store
    from agentmesh.collector.store.retention import prune_before

    now = time.time()
    cut = parse_when(str(args.older_than), "--older-than", now=now)
    if cut >= now:
        raise ConfigError(f"--older-than {args.older_than}: that is not in the past")
    if cut <= 0:
        raise ConfigError(f"--older-than {args.older_than}: that is before 1970, nothing is as old")
    settings = store_settings(args)
    progress = Console(stderr=True)
    deleted = 0

    def count(batch: Pruned) -> None:  # a long first prune shows it is moving
        nonlocal deleted
        deleted += batch.runs
        if batch.runs:
            progress.print(f"{deleted:,} runs deleted…", style="dim")

    async def run() -> Pruned:
        store = await open_store(settings)
        try:
            return await prune_before(store, int(cut * 1e9), done=count)
        finally:
            await store.close()

    pruned = asyncio.run(run())
    when = datetime.fromtimestamp(cut, UTC).isoformat(timespec="seconds")
    print(
        f"deleted {pruned.runs:,} runs, {pruned.spans:,} spans and {pruned.detections:,} "
        f"detections that ended before {when}"
    )
    return 0
