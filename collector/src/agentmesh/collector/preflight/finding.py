"""What one preflight check found: :class:`Finding`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Finding", "Verdict"]

Verdict = Literal["ok", "warn", "fail"]
"""``ok``; ``warn``: the collector starts, but look; ``fail``: it would not start or work."""


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check, in words.

    Attributes:
        check: What was checked (``grpc port``, ``store``, ``forward langsmith``…).
        verdict: ``ok``, ``warn`` or ``fail``.
        detail: What was found, or what is wrong and what to do.
    """

    check: str
    verdict: Verdict
    detail: str
