"""Commands that read what was stored.

``agentmesh runs``, ``graph``, ``detections``, ``costs``, ``decisions`` and ``export``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from agentmesh.collector.cli.collector_client import get_file, get_json
from agentmesh.collector.cli.store_options import add_store_options, store_settings
from agentmesh.collector.durations import parse_duration, when_ns
from agentmesh.collector.export import EXPORT_FORMATS
from agentmesh.collector.store.base import RUN_STATES, RunSummary
from agentmesh.core import ConfigError

if TYPE_CHECKING:
    from agentmesh.collector.store.base import CostGroup, CostRow, SpanStore

T = TypeVar("T")

__all__ = [
    "add_costs_command",
    "add_decisions_command",
    "add_detections_command",
    "add_export_command",
    "add_graph_command",
    "add_runs_command",
    "parse_duration",
]


def _since_ns(args: argparse.Namespace) -> int | None:
    """The ``--since`` option as a point in time (ns), or None."""
    if args.since is None:
        return None
    return when_ns(str(args.since), "--since")


def _with_store(args: argparse.Namespace, read: Callable[[SpanStore], Awaitable[T]]) -> T:
    """Open the store the options name, run ``read`` on it, close it."""
    from agentmesh.collector.store.factory import open_store

    settings = store_settings(args)

    async def run() -> T:
        store = await open_store(settings)
        try:
            return await read(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _add_reading_options(
    parser: argparse.ArgumentParser,
    *,
    listing: bool = True,
    since_help: str = "only runs started this long ago or later (15m, 2h, 7d)",
) -> None:
    """Declare where to read (store or ``--collector``), and for listings ``--since``/``--json``."""
    add_store_options(parser)
    if listing:
        parser.add_argument("--since", help=since_help)
        parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--collector",
        metavar="URL",
        help="ask a running collector's OTLP/HTTP endpoint (http://127.0.0.1:4318) instead of "
        "reading the store: no need to stop a DuckDB collector (AGENTMESH_API_TOKEN: its token)",
    )


def _collector_query(args: argparse.Namespace, **query: str) -> dict[str, str]:
    """The query parameters of an API call, with ``--since`` passed on as written."""
    return query | ({"since": str(args.since)} if args.since is not None else {})


def _print_json_lines(rows: Sequence[RunSummary] | Sequence[CostRow]) -> None:
    """One JSON object per line; runs as the API gives them (with their ``state``)."""
    from agentmesh.collector.api.payloads import run_to_json

    for row in rows:
        print(json.dumps(run_to_json(row) if isinstance(row, RunSummary) else asdict(row)))


def add_runs_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh runs``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument("--limit", type=int, default=20, help="most runs listed (default 20)")
    parser.add_argument(
        "--state",
        choices=RUN_STATES,
        help="only runs in this state (paused: the runs waiting for input; failed: the runs "
        "whose root span ended in error and that no run continues; interrupted: those stopped "
        "before they finished, without failing)",
    )
    parser.add_argument(
        "--conversation",
        metavar="ID",
        help="only the runs of this conversation (a LangGraph thread id, a CrewAI flow state id)",
    )
    parser.add_argument(
        "--workflow",
        metavar="NAME",
        help="only the runs of this workflow (gen_ai.workflow.name, exactly: the workflow label "
        "of agentmesh_runs_failed_total)",
    )
    _add_reading_options(parser)
    parser.set_defaults(handler=_runs)


def _runs(args: argparse.Namespace) -> int:
    limit = int(args.limit)
    if args.collector:
        from agentmesh.collector.api.payloads import run_from_json
        from agentmesh.collector.api.runs import MAX_LIMIT

        if limit < 1:
            raise ConfigError(f"--limit must be at least 1, not {limit}")
        query = _collector_query(args)
        if args.state is not None:
            query["state"] = str(args.state)
        if args.conversation is not None:
            query["conversation"] = str(args.conversation)
        if args.workflow is not None:
            query["workflow"] = str(args.workflow)
        runs: list[RunSummary] = []
        while len(runs) < limit:  # pages of at most the API's MAX_LIMIT, newest first
            query["limit"] = str(min(limit - len(runs), MAX_LIMIT))
            answer = cast("dict[str, Any]", get_json(args.collector, "/v1/runs", **query))
            runs += [run_from_json(run) for run in answer["runs"]]
            if not answer.get("next_before"):
                break
            query["before"] = str(answer["next_before"])
    else:
        since = _since_ns(args)
        runs = _with_store(
            args,
            lambda store: store.runs(
                limit,
                since_ns=since,
                state=args.state,
                conversation_id=args.conversation,
                workflow_name=args.workflow,
            ),
        )
    if args.json:
        _print_json_lines(runs)
    else:
        from rich.console import Console

        from agentmesh.collector.cli.render import render_runs

        render_runs(Console(), runs)
    return 0


def add_decisions_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh decisions``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument(
        "--limit", type=int, default=20, help="most decisions listed, the newest (default 20)"
    )
    parser.add_argument("--task-class", help="only the decisions of this task class")
    parser.add_argument("--model", help="only the decisions that chose or were answered by MODEL")
    _add_reading_options(parser)
    parser.set_defaults(handler=_decisions)


def _decisions(args: argparse.Namespace) -> int:
    from agentmesh.collector.api.decisions import MAX_DECISIONS  # the API's bound, here too

    limit = int(args.limit)
    if not 1 <= limit <= MAX_DECISIONS:
        raise ConfigError(f"--limit must be from 1 to {MAX_DECISIONS}, not {limit}")
    task_class = cast("str | None", args.task_class)
    model = cast("str | None", args.model)
    if args.collector:
        filters = {"task_class": task_class or "", "model": model or ""}
        query = _collector_query(args, limit=str(limit), **{k: v for k, v in filters.items() if v})
        answer = cast(
            "dict[str, list[dict[str, object]]]",
            get_json(args.collector, "/v1/decisions", **query),
        )
        decisions = answer["decisions"]
    else:
        from agentmesh.collector.routing.outcomes import decision_outcomes

        since = _since_ns(args)
        found = _with_store(
            args,
            lambda store: decision_outcomes(
                store,
                since=None if since is None else since / 1e9,
                limit=limit,
                task_class=task_class,
                model=model,
            ),
        )
        decisions = [outcome.as_dict() for outcome in reversed(found)]
    if args.json:
        for decision in decisions:
            print(json.dumps(decision))
    else:
        from rich.console import Console

        from agentmesh.collector.cli.render import render_decisions

        render_decisions(Console(), decisions)
    return 0


def add_detections_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh detections``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument(
        "--limit", type=int, default=20, help="most detections listed, the newest (default 20)"
    )
    parser.add_argument("--type", help="only detections of this type (handoff_loop, stuck, ...)")
    _add_reading_options(
        parser, since_help="only detections made this long ago or later (15m, 2h, 7d)"
    )
    parser.set_defaults(handler=_detections)


def _detections(args: argparse.Namespace) -> int:
    from agentmesh.collector.api.runs import MAX_LIMIT  # the API's bound, here too
    from agentmesh.collector.hot_state.events import detection_from_dict, detection_to_dict

    limit = int(args.limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"--limit must be from 1 to {MAX_LIMIT}, not {limit}")
    detection_type = cast("str | None", args.type)
    if args.collector:
        query = _collector_query(args, limit=str(limit))
        if detection_type:
            query["type"] = detection_type
        answer = cast(
            "dict[str, list[dict[str, Any]]]",
            get_json(args.collector, "/v1/detections", **query),
        )
        found = [detection_from_dict(d) for d in answer["detections"]]
    else:
        since = _since_ns(args)
        oldest_first = _with_store(
            args,
            lambda store: store.detections(
                since_ns=since, detection_type=detection_type, limit=limit
            ),
        )
        found = oldest_first[::-1]
        if not found and detection_type:
            from agentmesh.collector.detectors.registry import unknown_detection_type

            unknown = unknown_detection_type(detection_type)
            if unknown is not None:
                raise ConfigError(unknown)
    if args.json:
        for detection in found:
            print(json.dumps(detection_to_dict(detection)))
    else:
        from rich.console import Console

        from agentmesh.collector.cli.render import render_detections

        render_detections(Console(), found)
    return 0


def add_costs_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh costs``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument(
        "--by", choices=("agent", "model"), default="agent", help="sum by agent (default) or model"
    )
    _add_reading_options(parser)
    parser.set_defaults(handler=_costs)


def _costs(args: argparse.Namespace) -> int:
    by: CostGroup = "model" if args.by == "model" else "agent"
    if args.collector:
        from agentmesh.collector.api.payloads import cost_from_json

        query = _collector_query(args, group_by=by)
        answer = cast(
            "dict[str, list[dict[str, object]]]", get_json(args.collector, "/v1/costs", **query)
        )
        rows = [cost_from_json(row) for row in answer["costs"]]
    else:
        since = _since_ns(args)
        rows = _with_store(args, lambda store: store.costs(since, group_by=by))
    if args.json:
        _print_json_lines(rows)
    else:
        from rich.console import Console

        from agentmesh.collector.cli.render import render_costs

        render_costs(Console(), rows, by)
    return 0


def add_graph_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh graph``.

    Args:
        parser: The subcommand's parser.
    """
    parser.add_argument("run", metavar="RUN_ID", help="run id or trace id (a unique prefix works)")
    _add_reading_options(parser, listing=False)
    parser.set_defaults(handler=_graph)


def _graph(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agentmesh.collector.cli.render import render_graph

    run = str(args.run)
    if not run.strip():
        raise ConfigError("agentmesh graph needs a run id or trace id (or the start of one)")
    if args.collector:
        from agentmesh.collector.api.payloads import graph_from_json
        from agentmesh.collector.hot_state.events import detection_from_dict

        answer = cast(
            "dict[str, Any]",
            get_json(args.collector, "/v1/runs/" + urllib.parse.quote(run, safe="")),
        )
        graph = graph_from_json(answer["graph"])
        detections = [detection_from_dict(d) for d in answer["detections"]]
    else:
        from agentmesh.collector.store.lookup import find_graph

        graph, detections = _with_store(args, lambda store: find_graph(store, run))
    render_graph(Console(), graph, detections)
    return 0


def add_export_command(parser: argparse.ArgumentParser) -> None:
    """Declare the options of ``agentmesh export``.

    Args:
        parser: The subcommand's parser.
    """
    _add_reading_options(parser, listing=False)
    parser.add_argument(
        "--format", choices=EXPORT_FORMATS, default="parquet", help="file format (default parquet)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("agentmesh-export"), help="directory to write into"
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    out, fmt = Path(args.out), str(args.format)
    if args.collector:
        counts = _export_from_collector(str(args.collector), out, fmt)
    else:
        from agentmesh.collector.export import export_store

        counts = _with_store(args, lambda store: export_store(store, out, fmt))
    for table, rows in counts.items():
        print(f"{table}: {rows} rows → {out / f'{table}.{fmt}'}")
    return 0


def _export_from_collector(base: str, out: Path, fmt: str) -> dict[str, int]:
    """Download ``GET /v1/export`` and unpack its files into ``out`` (replacing them)."""
    import tempfile
    import zipfile

    from agentmesh.collector.api.export import EXPORT_PATH, EXPORT_ROWS_HEADER

    with tempfile.TemporaryFile() as archive:
        headers = get_file(base, EXPORT_PATH, archive, format=fmt)
        try:
            counts = {str(k): int(v) for k, v in json.loads(headers[EXPORT_ROWS_HEADER]).items()}
            with zipfile.ZipFile(archive) as files:
                out.mkdir(parents=True, exist_ok=True)
                for name in files.namelist():
                    if Path(name).name != name:  # only plain file names: nothing outside out
                        raise ConfigError(f"unexpected file {name!r} in the export")
                    (out / name).write_bytes(files.read(name))
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise ConfigError(f"collector at {base} sent a broken export: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"cannot write the export to {out}: {exc}") from exc
    return counts
