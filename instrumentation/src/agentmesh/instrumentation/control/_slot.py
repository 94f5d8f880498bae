"""``ClientSlot``: the process-wide background client of one kind, made on first use.

The control document's and the route table's runtimes each keep one client per process: the
first reader configures it (from the settings, once), later reads cost one attribute read. The
client is stopped at interpreter exit and by :meth:`ClientSlot.shutdown`; a forked child (where
the parent's thread does not exist) configures its own on first use. Never raises on the read
path: a failed configuration is logged and leaves the slot empty until configured again.

Example:
    >>> slot = ClientSlot("example", lambda: None)  # configure: nothing to follow
    >>> slot.client() is None, slot.configured
    (True, True)
    >>> slot.shutdown()
    >>> slot.configured
    False
"""

from __future__ import annotations

import atexit
import itertools
import os
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from agentmesh.instrumentation._failopen import report, safe_call

__all__ = ["Background", "ClientSlot", "changes", "note_change"]

_numbers = itertools.count(1)  # next() is atomic: concurrent changes never reuse a value
_changes = [0]  # set anew whenever a slot's client, or anything else a call hook reads, changes


def changes() -> int:
    """Return a number that changes whenever a slot's client changes (or :func:`note_change`).

    A reader that found nothing to do at some value may skip its work until the value moves
    (the provider call hook does while routing is off, no route table sets a mode and no run
    is stopped). The long-poll clients move it after taking a new document.

    Returns:
        The current value.
    """
    return _changes[0]


def note_change() -> None:
    """Move :func:`changes` (other state a call hook reads changed, e.g. the routing mode)."""
    _changes[0] = next(_numbers)


class Background(Protocol):
    """A client with a background thread (started once, stopped at shutdown)."""

    def start(self) -> None:
        """Start the thread."""
        ...

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the thread (never raises)."""
        ...


ClientT = TypeVar("ClientT", bound=Background)


class ClientSlot(Generic[ClientT]):
    """Holds the process-wide client of one kind.

    Args:
        name: What the client follows (``"route_table"``): names the fail-open reports
            (``route_table.configure``, ``route_table.stop``).
        configure: Reads the settings and installs the client (:meth:`install`); returns it,
            or ``None`` when nothing is followed. Called on first use.
    """

    def __init__(self, name: str, configure: Callable[[], ClientT | None]) -> None:
        self._name = name
        self._configure = configure
        self._lock = threading.Lock()
        self._first_use = threading.Lock()
        self._client: ClientT | None = None
        self._configured = False  # the settings were read (client may still be None: off)
        self._exiting = False
        self._hooks_registered = False

    @property
    def configured(self) -> bool:
        """Whether the settings were read (the client may still be ``None``: nothing followed)."""
        return self._configured

    def install(self, client: ClientT | None) -> ClientT | None:
        """Set the client in force (the previous one is stopped) and start it.

        Args:
            client: The client, or ``None``: nothing followed.

        Returns:
            ``client``.
        """
        with self._lock:
            previous, self._client = self._client, client
            self._configured = True
            note_change()
            self._register_hooks()
        if previous is not None and previous is not client:
            previous.stop(timeout_s=0.2)
        if client is not None and not self._exiting:
            client.start()
        return client

    def client(self) -> ClientT | None:
        """Return the client in force, configuring it on first use (never raises).

        Returns:
            The client, or ``None`` when nothing is followed (or configuring it failed).
        """
        if self._configured:
            return self._client
        if self._exiting:
            return None
        with self._first_use:
            if not self._configured:
                configured = safe_call(f"{self._name}.configure", self._configure)
                if configured is None and not self._configured:
                    self.install(None)  # invalid settings: off until configured again
        return self._client

    def shutdown(self, timeout_s: float = 1.0) -> None:
        """Stop the client; the next use reads the settings again (never raises).

        Args:
            timeout_s: Longest time to wait for its thread.
        """
        with self._lock:
            previous, self._client = self._client, None
            self._configured = False
            note_change()
        if previous is not None:
            try:
                previous.stop(timeout_s)
            except Exception as exc:  # noqa: BLE001 - fail-open
                report(f"{self._name}.stop", exc)

    def _register_hooks(self) -> None:
        if self._hooks_registered:
            return
        self._hooks_registered = True
        atexit.register(self._at_exit)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork)

    def _at_exit(self) -> None:
        self._exiting = True
        self.shutdown(timeout_s=0.2)

    def _after_fork(self) -> None:
        # The parent's thread does not exist here; the child reads the settings again on first use.
        self._lock = threading.Lock()
        self._first_use = threading.Lock()
        self._client = None
        self._configured = False
        note_change()
