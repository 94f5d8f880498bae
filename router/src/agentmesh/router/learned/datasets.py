"""Training data for the predictor: JSON-lines examples and RouterBench-style wide CSVs.

Two formats are read into :class:`~agentmesh.router.learned.predictor.Example` lists:

- **JSON lines**, one example per line::

      {"prompt": "…", "task_class": "qa",
       "outcomes": {"gpt-4o": {"quality": 1.0, "cost_usd": 0.004, "latency_s": 1.2},
                    "gpt-4o-mini": 0.0}}

  (an outcome may be a bare quality number);
- **wide CSVs** as RouterBench ships them: ``prompt``, ``eval_name`` (the task class), one
  0/1 (or score) column per model and ``<model>|total_cost``; rows with a missing value are
  skipped and counted.

Errors name the file and line and say what is wrong.

Example:
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ex.jsonl"
    >>> _ = path.write_text(json.dumps({"prompt": "hi", "outcomes": {"m": 1}}))
    >>> read_examples(path).examples[0].outcomes["m"].quality
    1.0
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, cast

from agentmesh.router.learned.predictor import Example, Outcome

__all__ = ["Dataset", "read_examples"]

_META: Final = frozenset({"", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to"})


@dataclass(frozen=True, slots=True)
class Dataset:
    """Examples read from files.

    Attributes:
        examples: The examples, in file order.
        models: Every model with at least one outcome, sorted.
        skipped: Rows skipped because a value was missing or unreadable.
    """

    examples: list[Example]
    models: list[str]
    skipped: int


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _quality(value: object, where: str) -> float:
    quality = _number(value, where)
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"{where}: a quality is from 0 to 1, not {quality:g}")
    return quality


def _outcome(value: object, where: str) -> Outcome:
    if not isinstance(value, Mapping):
        return Outcome(_quality(value, where))
    raw = cast("Mapping[str, object]", value)
    cost = raw.get("cost_usd")
    latency = raw.get("latency_s")
    return Outcome(
        _quality(raw.get("quality"), f"{where}.quality"),
        None if cost is None else _number(cost, f"{where}.cost_usd"),
        None if latency is None else _number(latency, f"{where}.latency_s"),
    )


def _read_jsonl(path: Path) -> list[Example]:
    out: list[Example] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{where}: expected a JSON object")
            obj = cast("dict[str, object]", row)
            prompt, task, outcomes = obj.get("prompt"), obj.get("task_class"), obj.get("outcomes")
            if not isinstance(prompt, str):
                raise ValueError(f"{where}: 'prompt' must be a string")
            if task is not None and not isinstance(task, str):
                raise ValueError(f"{where}: 'task_class' must be a string or null")
            if not isinstance(outcomes, dict) or not outcomes:
                raise ValueError(f"{where}: 'outcomes' must be a non-empty object of models")
            parsed = {
                str(m): _outcome(v, f"{where}: outcomes.{m}")
                for m, v in cast("dict[str, object]", outcomes).items()
            }
            out.append(Example(prompt, task, parsed))
    return out


def _read_wide_csv(path: Path) -> tuple[list[Example], int]:
    csv.field_size_limit(sys.maxsize)
    out: list[Example] = []
    skipped = 0
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        models = [
            f for f in fields if f not in _META and "|" not in f and f"{f}|total_cost" in fields
        ]
        if "prompt" not in fields or not models:
            raise ValueError(
                f"{path}: expected a 'prompt' column and, per model, a quality column and a "
                "'<model>|total_cost' column"
            )
        for row in reader:
            try:
                outcomes = {
                    m: Outcome(float(row[m]), float(row[f"{m}|total_cost"])) for m in models
                }
            except (TypeError, ValueError):
                skipped += 1
                continue
            out.append(Example(row["prompt"], row.get("eval_name") or path.stem, outcomes))
    return out, skipped


def read_examples(path: Path) -> Dataset:
    """Read examples from a JSON-lines file, a CSV file, or a folder of either.

    Args:
        path: The file or folder (a folder: every ``*.jsonl`` and ``*.csv`` in it, sorted).

    Returns:
        The dataset.

    Raises:
        ValueError: Nothing readable, or a malformed file (the message names the place).
    """
    files = sorted([*path.glob("*.jsonl"), *path.glob("*.csv")]) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise ValueError(f"{path}: no .jsonl or .csv file to read")
    examples: list[Example] = []
    skipped = 0
    for f in files:
        if f.suffix == ".csv":
            rows, bad = _read_wide_csv(f)
            examples += rows
            skipped += bad
        else:
            examples += _read_jsonl(f)
    if not examples:
        raise ValueError(f"{path}: no complete example")
    models = sorted({m for ex in examples for m in ex.outcomes})
    return Dataset(examples, models, skipped)
