"""Argument parsing and dispatch of the ``agentmesh`` command."""

from __future__ import annotations

import argparse
import os
import sys

from agentmesh.collector.cli.check_cmd import add_check_command
from agentmesh.collector.cli.checkpoints_cmd import add_checkpoints_command
from agentmesh.collector.cli.collector_cmd import add_collector_command
from agentmesh.collector.cli.demo_cmd import add_demo_command
from agentmesh.collector.cli.export_decisions import add_export_decisions_command
from agentmesh.collector.cli.prune_cmd import add_prune_command
from agentmesh.collector.cli.query_cmds import (
    add_costs_command,
    add_decisions_command,
    add_detections_command,
    add_export_command,
    add_graph_command,
    add_runs_command,
)
from agentmesh.collector.cli.resume_cmd import add_resume_command
from agentmesh.collector.cli.router_cmd import add_router_command
from agentmesh.core import AgentMeshError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of every subcommand.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(
        prog="agentmesh",
        description="AgentMesh: coordination runtime for multi-agent LLM systems.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add_collector_command(
        commands.add_parser(
            "collector",
            help="run the collector (OTLP/gRPC receiver, graphs, detection, DuckDB)",
            description=(
                "Receive OTLP/gRPC spans, rebuild each run's agent graph, detect failures and "
                "store everything in DuckDB. Options override AGENTMESH_COLLECTOR_* variables."
            ),
        )
    )
    add_check_command(
        commands.add_parser(
            "check",
            help="check a collector's configuration and what it reaches, without starting it",
            description=(
                "Check what a collector with these options (the same as `agentmesh collector`) "
                "needs: its ports are free, its TLS files load and are not about to expire, its "
                "store is reachable and not held by another process, its Redis answers, its "
                "forwarding endpoints accept a connection. Exits 1 when a check fails."
            ),
        )
    )
    add_demo_command(
        commands.add_parser(
            "demo",
            help="run a LangGraph multi-agent app against a fake provider, clean and looping",
            description=(
                "Start the fake provider and the collector on free loopback ports, run a "
                "LangGraph supervisor app once cleanly and once with an injected handoff loop, "
                "and show what the collector saw. No API key, no network."
            ),
        )
    )
    add_runs_command(
        commands.add_parser(
            "runs",
            help="list stored runs, newest first",
            description="List the runs in the store with their agents, handoffs, cost and "
            "detections. Reads the DuckDB file (stop the collector first: DuckDB allows one "
            "writer) or Postgres.",
        )
    )
    add_graph_command(
        commands.add_parser(
            "graph",
            help="show one run's agent graph and detections",
            description="Show a run's agents, handoffs, agent sequence and detections.",
        )
    )
    add_detections_command(
        commands.add_parser(
            "detections",
            help="the detections of every run, newest first",
            description="List what the detectors found (loops, ping-pong, stuck steps, "
            "runaway runs, spikes, outages...), newest first, with the run and agent of each, "
            "from the store or a running collector.",
        )
    )
    add_costs_command(
        commands.add_parser(
            "costs",
            help="LLM calls, tokens and cost by agent or by model",
            description="Sum the LLM usage of the stored runs by agent or by model, over all "
            "runs or those started since a time.",
        )
    )
    add_decisions_command(
        commands.add_parser(
            "decisions",
            help="the routing decisions, newest first, with how each call went",
            description="List the router's decisions (task class, mode, the model asked for "
            "and chosen, the model that answered) joined with their outcomes (error, "
            "fallbacks, latency, cost, quality), from the store or a running collector.",
        )
    )
    export = commands.add_parser(
        "export",
        help="export runs, agents, handoffs, spans and detections to Parquet, CSV or JSON",
        description="Write one file per table (runs, agents, handoffs, spans, detections); "
        "`agentmesh export decisions` writes the routing decisions with their outcomes.",
    )
    add_export_command(export)
    add_export_decisions_command(export)
    add_prune_command(
        commands.add_parser(
            "prune",
            help="delete the stored runs that ended before a time",
            description="Delete the runs that ended before a time, whole (spans, graph, "
            "detections), in batches. The collector does this itself with "
            "AGENTMESH_COLLECTOR_RETENTION_DAYS; on DuckDB stop the collector first (one "
            "writer).",
        )
    )
    add_resume_command(
        commands.add_parser(
            "resume",
            help="continue a failed or stopped run from its last good handoff checkpoint",
            description=(
                "Find where a run resumes (from a running collector with --collector, else "
                "from the store) and run the app again with that plan: `agentmesh resume "
                "RUN_ID -- python app.py`; the plan's checkpoint store is checked first "
                "(checkpoints kept in memory, an unreachable store: exit 2 unless --force). "
                "Without a command, print the plan."
            ),
        )
    )
    add_checkpoints_command(
        commands.add_parser(
            "checkpoints",
            help="list, prune, expire and size the checkpoints of a checkpoint store",
            description=(
                "Look into the checkpoint store the savers and handoff checkpoints write to "
                "(--url or AGENTMESH_CHECKPOINT_URL) and clean it up: list, prune, delete, "
                "expire, size."
            ),
        )
    )
    add_router_command(
        commands.add_parser(
            "router",
            help="train the routing predictor offline",
            description="Fit the router's predictor from labelled examples or exported "
            "decisions (`agentmesh router train`).",
        )
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``agentmesh`` command.

    Args:
        argv: Arguments (defaults to ``sys.argv[1:]``).

    Returns:
        The exit code.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    trailing: list[str] = []
    if "--" in arguments:  # `agentmesh resume RUN_ID -- python app.py`: the app's command line
        cut = arguments.index("--")
        arguments, trailing = arguments[:cut], arguments[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(arguments)
    if trailing:
        if not hasattr(args, "app"):
            parser.error(f"`agentmesh {args.command}` takes no command after --")
        args.app = trailing
    try:
        return int(args.handler(args))
    except AgentMeshError as exc:
        print(f"agentmesh: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `agentmesh runs --json | head -1`: the reader has all it wants
        # Python would report the pipe again when it flushes stdout at exit: point it at null
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
