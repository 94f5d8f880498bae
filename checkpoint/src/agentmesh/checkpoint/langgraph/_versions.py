"""Channel versions for the AgentMesh savers: :func:`next_version` and :func:`version_key`.

Versions follow the official Postgres saver: ``"{n:032}.{random:016}"``, a zero-padded counter
(so versions of one channel order as strings) and a random fraction (so two writers that fork a
thread never produce the same version with different values).

Example:
    >>> v1 = next_version(None)
    >>> v1.split(".")[0] == "0" * 31 + "1"
    True
    >>> next_version(v1).split(".")[0][-1], next_version(7).split(".")[0][-1]
    ('2', '8')
    >>> version_key(3), version_key("0001.5")
    ('3', '0001.5')
"""

from __future__ import annotations

import random

__all__ = ["next_version", "version_key"]


def next_version(current: str | int | float | None) -> str:
    """The version after ``current`` (``None``: the channel has none yet).

    Args:
        current: The channel's current version: a string this function produced, or an integer
            (or float) written by another saver.

    Returns:
        ``"{n+1:032}.{random:016}"``.
    """
    if current is None:
        counter = 0
    elif isinstance(current, str):
        counter = int(current.split(".", 1)[0])
    else:
        counter = int(current)
    return f"{counter + 1:032}.{random.random():016}"


def version_key(version: str | int | float) -> str:
    """A version as the store keys it (the store's versions are strings).

    Args:
        version: A channel version as LangGraph holds it.

    Returns:
        The string form; the checkpoint document keeps the original value.
    """
    return version if isinstance(version, str) else str(version)
