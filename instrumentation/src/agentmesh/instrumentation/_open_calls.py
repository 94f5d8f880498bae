"""Provider calls still open, ended (and so exported) when the process exits.

A provider call's span ends when its response is read, or when its stream is exhausted, closed,
fails or is garbage-collected. An application that abandons a stream, by breaking out of the loop
or by keeping it in a global, and then exits, would lose the span. The SDK's stream is part of a
reference cycle, so the garbage collector seldom frees it before the exporter's final flush.
Every call is therefore registered here while it is open. The registry holds weak references,
so it keeps nothing alive. :func:`end_open_calls` ends what is still open, marking each span
:data:`ENDED_AT_EXIT`. It runs from two places:

- the ``atexit`` hook that :func:`end_at_exit` arms, so it runs before the tracer providers'
  own hooks (which export what has ended);
- the span processor's ``shutdown()``, before its final flush.

Registering costs a dict store and a weak reference per call, and ending costs a dict pop.

Example:
    >>> ENDED_AT_EXIT
    'agentmesh.call.ended_at_exit'
"""

from __future__ import annotations

import atexit
import weakref
from typing import Final, Protocol

from agentmesh.core.log import get_logger
from agentmesh.core.semconv import AGENTMESH_CALL_ENDED_AT_EXIT
from agentmesh.instrumentation._failopen import guarded

__all__ = [
    "ENDED_AT_EXIT",
    "OpenCall",
    "any_open",
    "end_at_exit",
    "end_open_calls",
    "track",
    "untrack",
]

_log = get_logger(__name__)

ENDED_AT_EXIT: Final = AGENTMESH_CALL_ENDED_AT_EXIT
"""Span attribute (boolean, ``true``): the call was still open when the process exited (or the
tracer provider shut down), for example a stream the application stopped reading, and the
instrumentation ended its span then."""


class OpenCall(Protocol):
    """A call whose span the registry can end."""

    def end_at_exit(self) -> None:
        """End the span now, marked :data:`ENDED_AT_EXIT` (nothing when already ended)."""
        ...


_open: dict[int, weakref.ref[OpenCall]] = {}
"""Open calls by ``id()``. A call removes itself when it ends. A call freed while open (which
the stream proxies' finalizers prevent) leaves a dead reference, replaced when its id is reused
or cleared by :func:`end_open_calls`."""


def track(call: OpenCall) -> None:
    """Register a call that has just started.

    Args:
        call: The call (weakly referenced).
    """
    _open[id(call)] = weakref.ref(call)


def untrack(call: OpenCall) -> None:
    """Forget a call that has ended (nothing when it was not registered).

    Args:
        call: The call.
    """
    _open.pop(id(call), None)


def any_open() -> bool:
    """Tell whether a registered call may still be open.

    Returns:
        Whether the registry holds any call.
    """
    return bool(_open)


def end_open_calls() -> int:
    """End every call still open, each marked :data:`ENDED_AT_EXIT`; never raises.

    Returns:
        How many calls were ended.
    """
    ended = 0
    with guarded("open_calls.end"):
        refs = list(_open.values())  # one C-level copy: safe while other threads register
        _open.clear()
        for ref in refs:
            call = ref()
            if call is None:
                continue
            with guarded("open_calls.end_call"):
                call.end_at_exit()
                ended += 1
        if ended:
            _log.debug("agentmesh.calls_ended_at_exit", calls=ended)
    return ended


def end_at_exit() -> None:
    """Make :func:`end_open_calls` run at exit, before the exit hooks registered so far.

    Tracer providers register their ``shutdown`` with ``atexit`` when they are built, and
    ``atexit`` runs the latest hook first. Instrumentors call this when they instrument (after
    the provider exists), so open calls end while the provider still exports. Calling it again
    moves the hook ahead of any hook registered in between.
    """
    atexit.unregister(end_open_calls)
    atexit.register(end_open_calls)
