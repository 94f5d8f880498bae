"""``agentmesh router train``: fit the router's predictor offline and write it as JSON.

From labelled examples (JSON lines or RouterBench-style wide CSVs, see
:mod:`agentmesh.router.learned.datasets`): the prompt clusters and the per task class x
cluster x model statistics. From exported decisions (``agentmesh export decisions``: no prompt
text, only each call's task class, cluster, model and outcome): the statistics, on the clusters
of a ``--base`` predictor. Point the collector at the file with
``AGENTMESH_COLLECTOR_ROUTER_PREDICTOR_PATH``; it keeps learning from live outcomes.

Example:
    >>> parser = argparse.ArgumentParser()
    >>> add_router_command(parser)
    >>> parser.parse_args(["train", "--examples", "x.jsonl", "-o", "p.json"]).clusters
    32
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, cast

from agentmesh.core import ConfigError
from agentmesh.router.learned.hashing import DEFAULT_TAIL_CHARS

if TYPE_CHECKING:
    from agentmesh.router.learned.predictor import Predictor

__all__ = ["add_router_command"]

_COLUMNS = (
    "task_class, CAST(features AS VARCHAR), mode, requested_model, chosen, quality, cost_usd, "
    "latency_s, error"
)
_READERS = {
    ".parquet": "read_parquet(?)",
    ".csv": "read_csv_auto(?)",
    ".jsonl": "read_json_auto(?)",
}


def add_router_command(parser: argparse.ArgumentParser) -> None:
    """Declare ``agentmesh router`` and its ``train`` subcommand.

    Args:
        parser: The ``router`` command's parser.
    """
    commands = parser.add_subparsers(dest="router_command", required=True)
    train = commands.add_parser(
        "train",
        help="fit the routing predictor from labelled examples or exported decisions",
        description="Fit the predictor the collector starts from "
        "(AGENTMESH_COLLECTOR_ROUTER_PREDICTOR_PATH) and write it as JSON.",
    )
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--examples",
        type=Path,
        metavar="PATH",
        help="JSON lines ({prompt, task_class, outcomes}) or wide CSVs (RouterBench columns), "
        "a file or a folder",
    )
    source.add_argument(
        "--decisions",
        type=Path,
        metavar="FILE",
        help="decisions exported by `agentmesh export decisions` (parquet, jsonl or csv)",
    )
    train.add_argument("--base", type=Path, help="predictor whose clusters --decisions use")
    train.add_argument("-o", "--output", type=Path, required=True, help="predictor JSON to write")
    train.add_argument("--clusters", type=int, default=32, help="prompt clusters (0: none)")
    train.add_argument("--seed", type=int, default=0, help="seed of the clustering")
    train.add_argument(
        "--tail-chars",
        type=int,
        default=DEFAULT_TAIL_CHARS,
        help="characters read from the end of each prompt to place it in a cluster",
    )
    train.set_defaults(handler=_train)


_NEEDED = (
    "task_class", "features", "mode", "requested_model", "chosen", "quality", "cost_usd",
    "latency_s", "error",
)  # fmt: skip


def _from_decisions(path: Path, base: Path | None) -> Predictor:
    import duckdb

    from agentmesh.collector.routing.trainer import load_predictor
    from agentmesh.router.learned.predictor import Predictor

    predictor = None
    if base is not None:
        try:
            predictor = load_predictor(base)
        except ConfigError as exc:
            reason = str(exc).partition(": ")[2] or str(exc)
            raise ConfigError(f"--base {base}: {reason}") from exc
    if predictor is None:
        from agentmesh.router.learned.quality import QualityModel

        predictor = Predictor(QualityModel())
    if not path.is_file():
        raise ConfigError(f"--decisions {path}: no such file")
    reader = _READERS.get(path.suffix, _READERS[".jsonl"])
    describe = f"DESCRIBE SELECT * FROM {reader}"  # noqa: S608 - a fixed reader, no user text
    try:
        columns = {row[0] for row in duckdb.execute(describe, [str(path)]).fetchall()}
    except duckdb.Error as exc:
        kind = path.suffix or "JSON lines"
        raise ConfigError(f"--decisions {path}: cannot read it as {kind}: {exc}") from exc
    missing = [name for name in _NEEDED if name not in columns]
    if missing:
        raise ConfigError(
            f"--decisions {path}: not a decisions export (no {', '.join(missing)} column); "
            "write one with `agentmesh export decisions`"
        )
    # columns of newer exports, and the decision log's top-level cluster, when present
    optional = [
        name if name in columns else f"NULL AS {name}" for name in ("sent_model", "cluster")
    ]
    fallbacks = "fallbacks" if "fallbacks" in columns else "NULL AS fallbacks"
    query = f"SELECT {_COLUMNS}, {', '.join(optional)}, {fallbacks} FROM {reader}"  # noqa: S608
    try:
        rows = duckdb.execute(query, [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise ConfigError(f"--decisions {path}: cannot read decisions: {exc}") from exc
    for row in rows:
        task, features, mode, requested, chosen, quality, cost, latency, error = row[:9]
        sent, top_cluster = row[9:11]
        failed = _models(row[11])
        cluster = _cluster_of(features, top_cluster)
        # The model that answered, as the route table names it (exports before sent_model: the
        # choice when enforced; a fallback's answer was then credited to the choice).
        name = sent or (chosen if mode == "enforce" else requested)
        for model in failed:  # each model fallen back from failed, as the trainer has it
            predictor.quality.update(task, cluster, model, 0.0)
        if name is None or quality is None:
            continue
        predictor.quality.update(
            task, cluster, str(name), float(quality),
            cost_usd=cost, latency_s=None if error or failed else latency,
        )  # fmt: skip
    return predictor


def _models(listed: object) -> list[str]:
    """The model names of a ``fallbacks`` cell: a list, or its JSON text (CSV exports)."""
    if isinstance(listed, str):
        try:
            listed = json.loads(listed)
        except ValueError:
            return []
    if not isinstance(listed, list):
        return []
    return [str(model) for model in cast("list[object]", listed) if model]


def _cluster_of(features: object, top_level: object) -> int:
    """A decision's prompt cluster: in its features, else at the top level (older logs), else 0."""
    try:
        found: object = json.loads(str(features or "{}")).get("cluster")
    except (ValueError, TypeError, AttributeError):
        found = None
    for value in (found, top_level):
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                return int(value)
            except (ValueError, OverflowError):
                continue
    return 0


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agentmesh.router.learned.datasets import read_examples
    from agentmesh.router.learned.predictor import train_predictor

    console = Console(stderr=True)
    if args.clusters < 0:
        raise ConfigError(f"--clusters must be 0 (none) or more, not {args.clusters}")
    if args.examples is not None and args.base is not None:
        raise ConfigError("--base goes with --decisions (--examples fits its own clusters)")
    if args.examples is not None:
        try:
            data = read_examples(args.examples)
        except (ValueError, OSError) as exc:
            raise ConfigError(f"--examples: {exc}") from exc
        if args.tail_chars <= 0:
            raise ConfigError(f"--tail-chars must be positive, not {args.tail_chars}")
        predictor = train_predictor(
            data.examples, clusters=args.clusters, seed=args.seed, tail_chars=args.tail_chars
        )
        fitted = predictor.clusters.k if predictor.clusters is not None else 0
        console.print(
            f"{len(data.examples):,} examples ({data.skipped} skipped), "
            f"{len(data.models)} models, {fitted} clusters"
        )
    else:
        predictor = _from_decisions(args.decisions, args.base)
        console.print(f"{predictor.quality.updates:,} outcomes from {args.decisions}")
    output: Path = args.output
    text = json.dumps(predictor.to_dict(), separators=(",", ":"))
    try:
        fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        Path(tmp).chmod(0o644)
        Path(tmp).replace(output)
    except OSError as exc:
        raise ConfigError(f"--output {output}: cannot write: {exc}") from exc
    console.print(f"wrote {output} ({len(text):,} bytes)")
    return 0
