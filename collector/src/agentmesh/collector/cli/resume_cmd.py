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

When the plan says where the checkpoints are stored (``checkpoint_store``, a masked URL), the
store is checked before the command runs (see :mod:`.checkpoint_store_check`): checkpoints kept
in memory died with the process that ran the run, a DuckDB file must exist here, a Redis or
PostgreSQL server must answer within 2 s. When it cannot serve the app, the command is not run
and the exit code is 2, unless ``--force``. When the app's ``AGENTMESH_CHECKPOINT_URL`` names
another store, a warning says so (the app would look for the checkpoint there). A plan that
names no store (spans of older instrumentation) is not checked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import urllib.parse
from collections.abc import Callable
from typing import cast

from agentmesh.collector.cli.checkpoint_store_check import in_process, plain, store_problem
from agentmesh.collector.cli.collector_client import get_json
from agentmesh.collector.cli.store_options import add_store_options, store_settings
from agentmesh.core import ConfigError
from agentmesh.core.resume_plan import resume_refusal
from agentmesh.core.settings import RESUME_ENV
from agentmesh.core.urls import checkpoint_store_url

__all__ = ["add_resume_command"]

_CHECKPOINT_URL_ENV = "AGENTMESH_CHECKPOINT_URL"
"""The app's checkpoint store setting (handoff and CrewAI task checkpoints)."""


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
        "runs again), or its checkpoint store was in memory or cannot be reached",
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
    refusal = resume_refusal(plan)
    lead, none = _checkpoint_words(plan, refused=refusal is not None)
    checkpoint = printable(str(plan.get("checkpoint_id") or none))
    details = f" ({plan.get('status')}: {plan.get('reason')})"
    console.print(
        f"run [bold]{printable(str(plan.get('run_id')))}[/]{printable(details)}\n"
        f"{lead} [bold]{checkpoint}[/]"
        + printable(
            (f" before step {plan.get('resume_from')!r}" if plan.get("resume_from") else "")
            + (f" on thread {plan.get('thread_id')!r}" if plan.get("thread_id") else "")
        )
    )
    store = _checkpoint_store(plan)
    if store is not None:
        # no wrapping: a URL or path stays whole, to be copied
        console.print(f"checkpoints stored in [bold]{printable(plain(store))}[/]", soft_wrap=True)
    if command is None:
        if refusal is not None:
            console.print(printable(f"note: {refusal}"))
        if store is not None and in_process(store):
            console.print(printable(f"note: {_memory_problem(plan, store)}"), soft_wrap=True)
        return 0
    if refusal is not None and not args.force:
        raise ConfigError(f"{refusal}; the command was not run (--force runs it anyway)")
    if store is not None:
        _check_store(
            plan,
            store,
            force=bool(args.force),
            warn=lambda text: console.print(printable(text), soft_wrap=True),
        )
    env = {**os.environ, RESUME_ENV: json.dumps(plan)}
    try:
        return subprocess.run(command, env=env, check=False).returncode  # noqa: S603
    except OSError as exc:
        raise ConfigError(f"cannot run {command[0]!r}: {exc}") from exc


def _checkpoint_words(plan: dict[str, object], *, refused: bool) -> tuple[str, str]:
    """How the summary names the plan's checkpoint, and what it says when there is none.

    A plan that is not resumed (a completed run, one already resumed) does not say "resume
    from": a completed run's checkpoint is its last one, another's is where ``--force`` would
    resume.
    """
    if not refused:
        return "resume from checkpoint", "— none: the run starts over"
    if plan.get("status") == "completed":
        return "last checkpoint", "— none"
    return "would resume from checkpoint", "— none: the run would start over"


def _checkpoint_store(plan: dict[str, object]) -> str | None:
    """The plan's checkpoint store, when it names one and a checkpoint to find there."""
    store = plan.get("checkpoint_store")
    if not isinstance(store, str) or not store or not plan.get("checkpoint_id"):
        return None
    return store


def _memory_problem(plan: dict[str, object], store: str) -> str:
    return (
        f"run {plain(str(plan.get('run_id')))} was checkpointed in memory ({plain(store)}), "
        "in the process that ran it: those checkpoints were gone when it exited, and a new "
        "process cannot resume from them; checkpoint runs to a store that outlives the process "
        "(a DuckDB file, Redis or PostgreSQL: AGENTMESH_CHECKPOINT_URL, DuckDBSaver, RedisSaver "
        "or PostgresSaver) to make them resumable"
    )


def _check_store(
    plan: dict[str, object], store: str, *, force: bool, warn: Callable[[str], None]
) -> None:
    """Refuse to run the app when the plan's checkpoint store cannot serve it.

    Args:
        plan: The resume plan.
        store: Its ``checkpoint_store`` (a masked URL).
        force: Warn instead of refusing.
        warn: Prints a warning (plain text).

    Raises:
        ConfigError: The checkpoints were in memory, or the store cannot be reached from here
            (unless ``force``).
    """
    run = plain(str(plan.get("run_id")))
    if in_process(store):
        problem = _memory_problem(plan, store)
    else:
        app_url = os.environ.get(_CHECKPOINT_URL_ENV, "").strip() or None
        same = app_url is not None and checkpoint_store_url(app_url) == store
        if app_url is not None and not same:
            warn(
                f"warning: the app's {_CHECKPOINT_URL_ENV} is "
                f"{plain(checkpoint_store_url(app_url))}, "
                f"but run {run} was checkpointed to {plain(store)}: the app would not find the "
                f"checkpoint there; set {_CHECKPOINT_URL_ENV} to the store the run used"
            )
        found = store_problem(store, connect_url=app_url if same else None)
        problem = None if found is None else f"cannot resume run {run}: {found}"
    if problem is None:
        return
    if force:
        warn(f"warning: {problem}; running the command anyway (--force)")
        return
    raise ConfigError(f"{problem}; the command was not run (--force runs it anyway)")
