"""Names read off CrewAI objects, defensively (no CrewAI import).

Example:
    >>> class Agent:
    ...     role = "  Senior   Researcher "
    >>> role_of(Agent())
    'Senior Researcher'
    >>> text_or_none(""), text_or_none(42)
    (None, '42')
"""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_ROLE", "role_of", "text_or_none"]

DEFAULT_ROLE: Final = "agent"
"""Name of an agent without a role."""


def text_or_none(value: object) -> str | None:
    """Return ``value`` as non-empty text, or ``None``.

    Args:
        value: A name, an id (UUIDs become text) or nothing.

    Returns:
        The text, or ``None`` when there is none.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text or None


def role_of(agent: object) -> str:
    """Return an agent's role with its whitespace normalised.

    Args:
        agent: A CrewAI agent.

    Returns:
        The role, or :data:`DEFAULT_ROLE`.
    """
    role = getattr(agent, "role", None)
    if not isinstance(role, str):
        return DEFAULT_ROLE
    return " ".join(role.split()) or DEFAULT_ROLE
