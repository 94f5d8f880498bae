"""The control document in Redis, shared by every collector: :class:`RedisControlState`.

- Key ``{prefix}control`` holds the document as JSON (with its version); channel
  ``{prefix}control`` carries the new version after each change. How the key is changed,
  followed and replayed after an outage is :mod:`agentmesh.collector.hot_state.shared_document`.
- A deleted key (a Redis reset) reads as an empty document, so deleting it clears every stopped
  run and open breaker; versions keep increasing for the long polls.

Fail-open: when Redis cannot be reached the store keeps serving the last known document and
applies changes locally (so this collector's applications still stop runs and skip broken
models); the changes are replayed on Redis, in order, when it answers again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final, Self

from agentmesh.collector.hot_state.shared_document import SharedDocument, SharedDocumentHealth
from agentmesh.collector.recovery.control_state import Change, ControlState
from agentmesh.collector.recovery.document import ControlDocument

__all__ = ["ControlStateHealth", "RedisControlState"]

_MAX_PENDING: Final = 10_000

ControlStateHealth = SharedDocumentHealth
"""How the Redis behind a control state is doing (available, failures, pending changes)."""


class RedisControlState(ControlState):
    """A :class:`~agentmesh.collector.recovery.control_state.ControlState` in Redis.

    Args:
        url: ``redis://host:6379/0``.
        prefix: Start of the key and channel names.
        timeout_seconds: Connect and command timeout.
        retry_seconds: After a failure, how long changes stay local before Redis is tried
            again (the subscriber reconnects at this pace too).
        refresh_seconds: How often the key is re-read without a change notice.

    Raises:
        ConfigError: A duration is not positive or the prefix is empty.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "agentmesh:",
        timeout_seconds: float = 1.0,
        retry_seconds: float = 2.0,
        refresh_seconds: float = 5.0,
    ) -> None:
        super().__init__()
        name = f"{prefix}control" if prefix else ""
        self._shared = SharedDocument(
            url,
            key=name,
            channel=name,
            what="control document",
            initial=self._current,
            decode=ControlDocument.from_json,
            accept=self._set_current,
            missing=ControlDocument(),
            timeout_seconds=timeout_seconds,
            retry_seconds=retry_seconds,
            refresh_seconds=refresh_seconds,
            max_pending=_MAX_PENDING,
        )

    @property
    def key(self) -> str:
        """The key holding the document."""
        return self._shared.key

    @property
    def channel(self) -> str:
        """The channel of change notices (the new version, as text)."""
        return self._shared.channel

    @property
    def health(self) -> ControlStateHealth:
        """Whether Redis answers, failures, changes waiting to be replayed."""
        return self._shared.health

    async def open(self) -> Self:
        """Read the document and subscribe to change notices; a dead Redis is logged, not raised.

        Returns:
            The store.
        """
        await self._shared.open()
        return self

    async def close(self) -> None:
        """Stop the subscriber and close the connection."""
        await self._shared.close()

    async def get(self) -> ControlDocument:
        """Read the document from Redis (the last known one when Redis fails).

        Returns:
            The document.
        """
        return await self._shared.refresh()

    async def update(self, change: Change) -> bool:
        """Apply a change in a Redis transaction (locally when Redis is down, replayed later).

        Args:
            change: The change function.

        Returns:
            Whether the document changed.
        """

        def numbered(document: ControlDocument, version: int) -> ControlDocument | None:
            following = change(document)
            return None if following is None else replace(following, version=version)

        return await self._shared.update(numbered) is not None
