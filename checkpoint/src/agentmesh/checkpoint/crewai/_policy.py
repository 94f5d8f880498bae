"""What a failed checkpoint write does: raise (the default) or log and carry on."""

from __future__ import annotations

from typing import Literal

from agentmesh.core.errors import CheckpointError
from agentmesh.core.log import get_logger

__all__ = ["OnError", "check_on_error", "read_failed", "write_failed"]

_log = get_logger("agentmesh.checkpoint.crewai")

OnError = Literal["raise", "log"]
"""``"raise"``: a failed write (or read) raises :class:`~agentmesh.core.CheckpointError`;
``"log"``: it is logged (``crewai_checkpoint_write_failed`` / ``…_read_failed``) and the run goes
on (a failed read: every task runs)."""


def check_on_error(value: str) -> OnError:
    """Validate an ``on_error`` setting.

    Args:
        value: ``"raise"`` or ``"log"``.

    Returns:
        The value.

    Raises:
        ValueError: Any other value.
    """
    if value == "raise":
        return "raise"
    if value == "log":
        return "log"
    raise ValueError(f"on_error must be 'raise' or 'log', not {value!r}")


def write_failed(on_error: OnError, error: CheckpointError, **details: object) -> None:
    """Apply the policy to a failed write.

    Args:
        on_error: The policy.
        error: The failure.
        **details: Context for the log event (thread, method, task…).

    Raises:
        CheckpointError: ``error`` itself, when the policy is ``"raise"``.
    """
    if on_error == "raise":
        raise error
    _log.error("crewai_checkpoint_write_failed", error=str(error), **details)


def read_failed(on_error: OnError, error: CheckpointError, **details: object) -> None:
    """Apply the policy to a failed read of stored task outputs.

    Args:
        on_error: The policy.
        error: The failure.
        **details: Context for the log event.

    Raises:
        CheckpointError: ``error`` itself, when the policy is ``"raise"``.
    """
    if on_error == "raise":
        raise error
    _log.error("crewai_checkpoint_read_failed", error=str(error), **details)
