"""Load the NAB corpus: the 58 series (``timestamp,value``) and their labelled anomaly windows.

Windows are kept as index ranges into their series (first and last index, both inclusive); a
window's end points are NAB timestamps that occur in the file (if one did not, the window is
snapped to the points it covers).
"""

from __future__ import annotations

import bisect
import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Series", "load_corpus", "parse_timestamp"]


@dataclass(frozen=True, slots=True)
class Series:
    """One NAB data file.

    Attributes:
        name: Path relative to ``data/``, e.g. ``realKnownCause/nyc_taxi.csv``.
        timestamps: Unix seconds of each point (NAB timestamps are read as UTC).
        values: The values.
        windows: Labelled anomaly windows as ``(first, last)`` indices, in order.
    """

    name: str
    timestamps: list[float]
    values: list[float]
    windows: list[tuple[int, int]]


def parse_timestamp(text: str) -> float:
    """Read a NAB timestamp (``2014-04-10 07:15:00`` with optional fraction) as UTC seconds."""
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC).timestamp()


def _window_indices(timestamps: list[float], start: float, end: float) -> tuple[int, int] | None:
    first = bisect.bisect_left(timestamps, start)
    last = bisect.bisect_right(timestamps, end) - 1
    if first > last:
        return None
    return first, last


def load_corpus(data_dir: Path, names: list[str] | None = None) -> list[Series]:
    """Load the NAB series and their windows.

    Args:
        data_dir: NAB root holding ``data/`` and ``labels/combined_windows.json``.
        names: Files to load (relative to ``data/``); every labelled file when ``None``.

    Returns:
        The series, sorted by name.

    Raises:
        FileNotFoundError: When the corpus is not at ``data_dir``.
    """
    labels = json.loads((data_dir / "labels" / "combined_windows.json").read_text())
    wanted = sorted(labels) if names is None else names
    corpus: list[Series] = []
    for name in wanted:
        timestamps: list[float] = []
        values: list[float] = []
        with (data_dir / "data" / name).open(newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            for row in reader:
                timestamps.append(parse_timestamp(row[0]))
                values.append(float(row[1]))
        windows: list[tuple[int, int]] = []
        for start, end in labels[name]:
            span = _window_indices(timestamps, parse_timestamp(start), parse_timestamp(end))
            if span is not None:
                windows.append(span)
        corpus.append(Series(name, timestamps, values, windows))
    return corpus
