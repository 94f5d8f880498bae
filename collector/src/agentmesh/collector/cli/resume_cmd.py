"""``agentmesh resume RUN_ID [-- COMMAND…]``: continue a failed or stopped run.

The plan (which thread, which checkpoint) comes from a running collector
(``--collector http://host:4318``, its ``GET /v1/runs/{run}/resume``) or, without it, from the
store (stop the collector first for DuckDB). With a command after ``--``, the command runs
with ``AGENTMESH_RESUME`` set to the plan (JSON): the instrumentation in the app resumes the
first run of that LangGraph thread (or CrewAI crew) from the plan's checkpoint instead of
starting over, and records the checkpoint on the new run's spans. The command's exit code is
``agentmesh resume``'s. Without a command, the plan is printed (``--json``: as JSON).

A run that completed, or that another run already continues, is not resumed: its work would
run again. The command is not run and the exit code is 2, unless ``--force``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import urllib.parse
from typing import cast

from agentmesh.collector.cli.collector_client import get_json
from agentmesh.collector.cli.store_options import add_store_options, store_settings
from agentmesh.core import ConfigError
from agentmesh.core.resume_plan import resume_refusal
from agentmesh.core.settings import RESUME_ENV

__all__ = ["add_resume_command"]


def add_resume_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh resume``.

    Args:
        parser: The subcommand's parser.
    """
    add_store_options(parser)
    parser.add_argument("run", metavar="RUN_ID", help="run id or trace id (a unique prefix works)")
    parser.add_argument(
        "--collector",
        metavar="URL",
        help="ask a running collector's OTLP/HTTP endpoint (http://127.0.0.1:4318) for the plan "
        "instead of reading the store",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument(
        "--force",
        action="store_true",
        help="run the command even when the run completed or was already resumed (its work "
        "runs again)",
    )
    parser.set_defaults(handler=_resume, app=[])  # the command after `--` (see cli.main)


def _from_collector(base: str, run: str) -> dict[str, object]:
    path = "/v1/runs/" + urllib.parse.quote(run, safe="") + "/resume"
    return cast("dict[str, object]", get_json(base, path))


def _from_store(args: argparse.Namespace) -> dict[str, object]:
    from agentmesh.collector.recovery.policy import RecoveryPolicy
    from agentmesh.collector.resume import find_plan
    from agentmesh.collector.store.factory import open_store

    settings = store_settings(args)
    policy = RecoveryPolicy.from_settings(settings)

    async def read() -> dict[str, object]:
        store = await open_store(settings)
        try:
            plan = await find_plan(store, str(args.run), policy=policy)
            return dict(plan.to_json())
        finally:
            await store.close()

    return asyncio.run(read())


def _resume(args: argparse.Namespace) -> int:
    plan = (
        _from_collector(str(args.collector), str(args.run)) if args.collector else _from_store(args)
    )
    command = list(cast("list[str]", args.app)) or None
    if args.json and command is None:
        print(json.dumps(plan))
        return 0
    from rich.console import Console

    from agentmesh.collector.cli.render import printable

    console = Console(stderr=command is not None)
    checkpoint = printable(str(plan.get("checkpoint_id") or "— none: the run starts over"))
    details = f" ({plan.get('status')}: {plan.get('reason')})"
    console.print(
        f"run [bold]{printable(str(plan.get('run_id')))}[/]{printable(details)}\n"
        f"resume from checkpoint [bold]{checkpoint}[/]"
        + printable(
            (f" before step {plan.get('resume_from')!r}" if plan.get("resume_from") else "")
            + (f" on thread {plan.get('thread_id')!r}" if plan.get("thread_id") else "")
        )
    )
    refusal = resume_refusal(plan)
    if command is None:
        if refusal is not None:
            console.print(printable(f"note: {refusal}"))
        return 0
    if refusal is not None and not args.force:
        raise ConfigError(f"{refusal}; the command was not run (--force runs it anyway)")
    env = {**os.environ, RESUME_ENV: json.dumps(plan)}
    try:
        return subprocess.run(command, env=env, check=False).returncode  # noqa: S603
    except OSError as exc:
        raise ConfigError(f"cannot run {command[0]!r}: {exc}") from exc
