"""Readers of the routing data sets: RouterBench wide CSVs and RouteLLM's MMLU / GSM8K files."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from pathlib import Path

from agentmesh.router.learned.datasets import read_examples

GPT4 = "gpt-4-1106-preview"


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt with every model's correctness and cost."""

    text: str
    task: str
    correct: dict[str, float]
    cost: dict[str, float]


def read_routerbench(folder: Path) -> tuple[list[Prompt], list[str], int]:
    """Read every CSV of a folder; return prompts, model names and rows dropped as incomplete."""
    try:
        data = read_examples(folder)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if GPT4 not in data.models:
        raise SystemExit(f"{folder} has no {GPT4} column: the 20%-of-its-cost figure needs it")
    prompts = [
        Prompt(
            ex.text,
            ex.task_class or "",
            {m: o.quality for m, o in ex.outcomes.items()},
            {m: o.cost_usd or 0.0 for m, o in ex.outcomes.items()},
        )
        for ex in data.examples
        if set(ex.outcomes) == set(data.models)
    ]
    return prompts, data.models, data.skipped + len(data.examples) - len(prompts)


def split(
    prompts: list[Prompt], seed: int, test_share: float = 0.3
) -> tuple[list[Prompt], list[Prompt]]:
    """Fixed-seed split, stratified by task (eval name)."""
    rng = random.Random(seed)
    by_task: dict[str, list[Prompt]] = {}
    for p in prompts:
        by_task.setdefault(p.task, []).append(p)
    train: list[Prompt] = []
    test: list[Prompt] = []
    for task in sorted(by_task):
        rows = by_task[task][:]
        rng.shuffle(rows)
        n_test = round(len(rows) * test_share)
        test += rows[:n_test]
        train += rows[n_test:]
    rng.shuffle(test)
    return train, test


@dataclass(frozen=True, slots=True)
class PairPrompt:
    """A RouteLLM two-model prompt: whether the strong and the weak model got it right."""

    text: str
    task: str
    strong: float
    weak: float


def _truth(value: str) -> float:
    return 1.0 if value.strip().lower() in ("true", "1", "1.0") else 0.0


def read_routellm(folder: Path) -> dict[str, list[PairPrompt]]:
    """Read RouteLLM's MMLU (one CSV per subject) and GSM8K files."""
    out: dict[str, list[PairPrompt]] = {}
    mmlu: list[PairPrompt] = []
    for path in sorted((folder / "mmlu").glob("*.csv")):
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                mmlu.append(
                    PairPrompt(
                        row["prompt"],
                        path.stem.removeprefix("mmlu_"),
                        _truth(row["gpt-4-1106-preview"]),
                        _truth(row["mistralai/Mixtral-8x7B-Instruct-v0.1"]),
                    )
                )
    if mmlu:
        out["mmlu"] = mmlu
    gsm = folder / "gsm8k_responses.csv"
    if gsm.exists():
        with gsm.open(newline="") as fh:
            out["gsm8k"] = [
                PairPrompt(
                    row["prompt"],
                    "gsm8k",
                    _truth(row["gpt-4-1106-preview"]),
                    _truth(row["mistralai/Mixtral-8x7B-Instruct-v0.1"]),
                )
                for row in csv.DictReader(fh)
            ]
    return out
