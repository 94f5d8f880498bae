"""The route table in Redis, shared by every collector: :class:`RedisRouteTableState`.

- Key ``{prefix}route_table`` holds the published table as JSON (with its version), so it
  survives a collector restart: :meth:`~RedisRouteTableState.open` loads it. Channel
  ``{prefix}route_table:updates`` carries the new version after each publication. How the key
  is changed, followed and replayed after an outage is
  :mod:`agentmesh.collector.hot_state.shared_document`.
- A deleted key leaves the last known table served until the next publication writes it back.

Fail-open: when Redis cannot be reached the store keeps serving the last known table and
applies publications locally; they are replayed on Redis, in order, when it answers again. A
key holding something that is not a route table is logged and left unused (the last known
table is served) until the next publication replaces it.
"""

from __future__ import annotations

import time
from typing import Final, Self

from agentmesh.collector.hot_state.shared_document import SharedDocument
from agentmesh.collector.recovery.control_state import ControlState
from agentmesh.collector.routing.table_state import Clock, RouteTableState, TableChange
from agentmesh.router.table import RouteTable

__all__ = ["RedisRouteTableState"]

_MAX_PENDING: Final = 100


class RedisRouteTableState(RouteTableState):
    """A :class:`~agentmesh.collector.routing.table_state.RouteTableState` in Redis.

    Args:
        url: ``redis://host:6379/0``.
        control: The control state whose open breakers the served table lists, if any.
        prefix: Start of the key and channel names.
        timeout_seconds: Connect and command timeout.
        retry_seconds: After a failure, how long publications stay local before Redis is tried
            again (the subscriber reconnects at this pace too).
        refresh_seconds: How often the key is re-read without a notice.
        clock: The time source of ``generated_at``.

    Raises:
        ConfigError: A duration is not positive or the prefix is empty.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        control: ControlState | None = None,
        prefix: str = "agentmesh:",
        timeout_seconds: float = 1.0,
        retry_seconds: float = 2.0,
        refresh_seconds: float = 5.0,
        clock: Clock = time.time,
    ) -> None:
        super().__init__(control, clock=clock)
        self._shared = SharedDocument(
            url,
            key=f"{prefix}route_table" if prefix else "",
            channel=f"{prefix}route_table:updates",
            what="route table",
            initial=self._published,
            decode=RouteTable.from_json,
            accept=self._set_published,
            timeout_seconds=timeout_seconds,
            retry_seconds=retry_seconds,
            refresh_seconds=refresh_seconds,
            max_pending=_MAX_PENDING,
        )

    @property
    def key(self) -> str:
        """The key holding the published table."""
        return self._shared.key

    @property
    def channel(self) -> str:
        """The channel of publication notices (the new version, as text)."""
        return self._shared.channel

    @property
    def available(self) -> bool:
        """Whether the last Redis call worked."""
        return self._shared.health.available

    @property
    def pending(self) -> int:
        """Publications applied locally, waiting to be replayed on Redis."""
        return self._shared.health.pending_changes

    async def open(self) -> Self:
        """Load the stored table and subscribe to notices; a dead Redis is logged, not raised.

        Returns:
            The store.
        """
        await self._shared.open()
        return self

    async def close(self) -> None:
        """Stop the subscriber and close the connection."""
        await self._shared.close()

    async def refresh(self) -> RouteTable:
        """Re-read the published table from Redis (the last known one when Redis fails).

        Returns:
            The published table.
        """
        return await self._shared.refresh()

    async def publish(self, change: TableChange) -> RouteTable:
        """Publish in a Redis transaction (locally when Redis is down, replayed later).

        Args:
            change: Makes the next table from the published one.

        Returns:
            The table published.

        Raises:
            RouteTableError: Applications would refuse the new table; nothing was published.
        """
        table = await self._shared.update(lambda base, version: self._next(base, change, version))
        return table if table is not None else self._published
