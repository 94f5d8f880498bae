"""The circuit breaker's state machine, as pure functions of the stored breaker.

::

    (none) --detection--> open --until passes--> half_open --call succeeds--> (none)
                           ^                        |
                           +----call fails: cool-down doubled (capped)----+

A breaker whose ``until`` has passed counts as half-open even before the document says so
(the periodic expiry flips the state for applications). Calls that ended before ``until`` were
made before the breaker opened (or by applications ignoring it): they change nothing.

Example:
    >>> first = tripped(None, now=100.0, cooldown=30.0, cap=600.0, reason="r", detection_id="d")
    >>> first.state, first.until
    ('open', 130.0)
    >>> reopened(first, ended_at=131.0, now=131.0, cap=600.0, reason="probe failed").until
    191.0
    >>> closes(first, ended_at=129.0), closes(first, ended_at=131.0)
    (False, True)
"""

from __future__ import annotations

from agentmesh.collector.recovery.document import Breaker

__all__ = ["closes", "is_half_open", "reopened", "tripped"]


def is_half_open(breaker: Breaker, at: float) -> bool:
    """Whether a call at ``at`` probes the model (the breaker is half-open then).

    Args:
        breaker: The breaker.
        at: Unix seconds.

    Returns:
        ``True`` when the state is ``half_open`` or ``until`` has passed.
    """
    return breaker.state == "half_open" or at >= breaker.until


def tripped(
    existing: Breaker | None,
    *,
    now: float,
    cooldown: float,
    cap: float,
    reason: str,
    detection_id: str,
    provider: str | None = None,
) -> Breaker | None:
    """The breaker after a detection says the model is failing.

    Args:
        existing: The model's breaker, if any.
        now: Unix seconds.
        cooldown: The first cool-down.
        cap: The longest cool-down.
        reason: Why, for people.
        detection_id: The detection.
        provider: The model's provider, when known.

    Returns:
        A new open breaker (first cool-down when there was none, doubled when it was
        half-open), or ``None`` when it is open already (nothing to change).
    """
    if existing is None:
        return Breaker("open", now + cooldown, reason, detection_id, provider, cooldown)
    if not is_half_open(existing, now):
        return None
    doubled = min(max(existing.cooldown_seconds, cooldown) * 2, cap)
    return Breaker(
        "open", now + doubled, reason, detection_id, provider or existing.provider, doubled
    )


def reopened(
    existing: Breaker | None, *, ended_at: float, now: float, cap: float, reason: str
) -> Breaker | None:
    """The breaker after a call to its model failed.

    Args:
        existing: The model's breaker, if any.
        ended_at: When the call ended, Unix seconds.
        now: Unix seconds.
        cap: The longest cool-down.
        reason: Why, for people.

    Returns:
        The breaker open again for twice its cool-down (at most ``cap``), or ``None`` when
        the call changes nothing (no breaker, or the call ended while it was open).
    """
    if existing is None or not is_half_open(existing, ended_at):
        return None
    if existing.state == "open" and now < existing.until:
        return None  # already re-opened by an earlier failure
    doubled = min(existing.cooldown_seconds * 2, cap) if existing.cooldown_seconds > 0 else cap
    return Breaker("open", now + doubled, reason, existing.detection_id, existing.provider, doubled)


def closes(existing: Breaker | None, *, ended_at: float) -> bool:
    """Whether a successful call closes the breaker.

    Args:
        existing: The model's breaker, if any.
        ended_at: When the call ended, Unix seconds.

    Returns:
        ``True`` when there is a breaker and the call was a probe (ended once it was
        half-open).
    """
    return existing is not None and is_half_open(existing, ended_at)
