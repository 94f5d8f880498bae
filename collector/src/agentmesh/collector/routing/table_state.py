"""Where the route table lives: :class:`RouteTableState`, and its in-memory backend.

The trainer publishes with a *change function*: it takes the published table and returns the
next one; the backend sets its ``version`` (one more than the last) and ``generated_at``, checks
that applications will accept it (:meth:`RouteTable.from_json` on its JSON) and stores it
(in memory here, in Redis with
:class:`~agentmesh.collector.routing.redis_table_state.RedisRouteTableState`).

The table *served* to applications (:attr:`RouteTableState.current`) is the published one with
the circuit breakers the recovery engine opened merged in (from the
:class:`~agentmesh.collector.recovery.control_state.ControlState`): a breaker that opens shows
in the route table at once. Its version is the published version plus the control document's
version, so it increases on every publication and on every control change (a long poll wakes,
the ETag changes).

Example:
    >>> import asyncio
    >>> from dataclasses import replace
    >>> async def main() -> tuple[int, str]:
    ...     async with MemoryRouteTableState() as state:
    ...         waiter = asyncio.create_task(state.wait_for(0, wait_seconds=5))
    ...         await state.publish(lambda table: replace(table, default_mode="shadow"))
    ...         table = await waiter
    ...         return table.version, str(table.default_mode)
    >>> asyncio.run(main())
    (1, 'shadow')
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Self

from agentmesh.collector.recovery.control_state import ControlState
from agentmesh.collector.recovery.document import ControlDocument
from agentmesh.core.errors import RouteTableError
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait
from agentmesh.router.table import BUNDLED_TABLE, MAX_ROUTE_TABLE_BYTES, RouteTable

__all__ = [
    "Clock",
    "MemoryRouteTableState",
    "RouteTableState",
    "TableChange",
    "checked",
    "served_table",
]

_log = get_logger(__name__)

TableChange = Callable[[RouteTable], RouteTable]
"""A publication: the next table from the published one (``version``/``generated_at`` are set
by the store). It may be called more than once (Redis conflicts): keep it free of side effects."""

Clock = Callable[[], float]
"""Seconds since the epoch (``time.time``)."""


def served_table(table: RouteTable, control: ControlDocument | None) -> RouteTable:
    """Merge the control document's open breakers into a published table.

    Args:
        table: The published table.
        control: The recovery engine's control document, or ``None`` (recovery off).

    Returns:
        The table applications get: ``version`` is the table's plus the document's, and each
        ``open`` breaker of the document is listed until the later of both ``until``.
    """
    if control is None or (control.version == 0 and not control.breakers):
        return table
    breakers = dict(table.breakers)
    for model, breaker in control.breakers.items():
        if breaker.state == "open":
            breakers[model] = max(breakers.get(model, breaker.until), breaker.until)
    return replace(table, version=table.version + control.version, breakers=breakers)


def checked(table: RouteTable) -> RouteTable:
    """Return ``table`` as applications will read it, or refuse it.

    Args:
        table: A table about to be published.

    Returns:
        The table read back from its JSON (fresh mappings, numbers as floats).

    Raises:
        RouteTableError: Applications would refuse it (too large, a bad value); the message
            names the field.
    """
    text = table.to_json()
    size = len(text.encode())
    if size > MAX_ROUTE_TABLE_BYTES:
        raise RouteTableError(
            f"the route table is {size} bytes; at most {MAX_ROUTE_TABLE_BYTES} can be published"
        )
    return RouteTable.from_json(text)


class RouteTableState(ABC):
    """The route table store: publications, the served table, long polls.

    Use it as an async context manager (or :meth:`open` / :meth:`close`).

    Args:
        control: The recovery engine's control state, whose open breakers the served table
            lists (``None``: none). Its owner opens and closes it.
        clock: The time source of ``generated_at``.
    """

    def __init__(self, control: ControlState | None = None, *, clock: Clock = time.time) -> None:
        self._control = control
        self._clock = clock
        self._published = BUNDLED_TABLE
        self._changed = asyncio.Event()
        self._served: tuple[RouteTable, ControlDocument | None, RouteTable] | None = None

    @property
    def published(self) -> RouteTable:
        """The last published table, without the control document's breakers."""
        return self._published

    @property
    def current(self) -> RouteTable:
        """The table served to applications (never waits): published table + open breakers."""
        table = self._published
        document = self._control.current if self._control is not None else None
        served = self._served
        if served is not None and served[0] is table and served[1] is document:
            return served[2]
        result = served_table(table, document)
        self._served = (table, document, result)
        return result

    @abstractmethod
    async def open(self) -> Self:
        """Start the store (load the last table, subscribe); never raises for a dead backend.

        Returns:
            The store.
        """

    @abstractmethod
    async def close(self) -> None:
        """Stop the store. Closing twice is harmless."""

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def refresh(self) -> RouteTable:
        """Re-read the published table from the backend (kept as is when the backend fails).

        Returns:
            The published table.
        """
        return self._published

    @abstractmethod
    async def publish(self, change: TableChange) -> RouteTable:
        """Publish the next table: a new version, ``generated_at`` now.

        Args:
            change: Makes the next table from the published one.

        Returns:
            The table published (without the control document's breakers).

        Raises:
            RouteTableError: Applications would refuse the new table; nothing was published.
        """

    async def wait_for(self, after: int, wait_seconds: float) -> RouteTable | None:
        """Wait until the served table's version is above ``after`` (a long poll).

        A caller ahead of the store (``after`` above the served version: the collector
        restarted without shared state) gets the table at once, after a fresh read.

        Args:
            after: The version the caller has.
            wait_seconds: Longest wait.

        Returns:
            The newer served table, or ``None`` when the wait ran out.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait_seconds)
        if self.current.version < after:
            await self.refresh()
            table = self.current
            if table.version != after:
                return table
        while True:
            table = self.current
            if table.version > after:
                return table
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            await self._changes(seconds=remaining)

    async def _changes(self, *, seconds: float) -> None:
        """Return when the published table or the control document changed, or after ``seconds``."""
        changed = self._changed
        control = self._control

        async def published() -> None:
            await changed.wait()

        async def controlled(document: ControlDocument) -> None:
            if control is not None:
                await control.wait_for(document.version, seconds)

        waits = {asyncio.ensure_future(published())}
        if control is not None:
            waits.add(asyncio.ensure_future(controlled(control.current)))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait(*waits)

    def _next(self, base: RouteTable, change: TableChange, version: int) -> RouteTable:
        """Apply ``change`` to ``base``, number it, date it and check it."""
        following = change(base)
        return checked(replace(following, version=version, generated_at=self._clock()))

    def _set_published(self, table: RouteTable) -> None:
        """Make ``table`` the published one and wake the long polls (if it differs)."""
        if table == self._published:
            return
        self._published = table
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class MemoryRouteTableState(RouteTableState):
    """A route table in this process only (one collector, tests): lost when it stops."""

    async def open(self) -> Self:
        """Nothing to start.

        Returns:
            The store.
        """
        return self

    async def close(self) -> None:
        """Nothing to stop."""

    async def publish(self, change: TableChange) -> RouteTable:
        """Publish the next table.

        Args:
            change: Makes the next table from the published one.

        Returns:
            The table published.

        Raises:
            RouteTableError: Applications would refuse the new table; nothing was published.
        """
        table = self._next(self._published, change, self._published.version + 1)
        self._set_published(table)
        _log.info("route table published", version=table.version)
        return table
