"""What a saver remembers of recent checkpoints' storage: :class:`RecentRefs`.

For each checkpoint it put or read, the saver keeps how each channel's value is stored
(:class:`~agentmesh.checkpoint.langgraph._chunks.ChannelRef`). A put that follows one of them
then refers to the unchanged channels' stored values and to the chunks it shares with its
parent without serialising or sending them again. Without an entry (a parent never seen, or
forgotten), the put serialises what it needs: nothing is ever referred to on a guess.

The memory is bounded: the least recently used checkpoints go first.

Example:
    >>> from agentmesh.checkpoint.langgraph._chunks import ChannelRef
    >>> refs = RecentRefs(capacity=1)
    >>> refs.remember("t", "", "c1", {"messages": ChannelRef("1", "1~x", ("a", "b"))})
    >>> refs.get("t", "", "c1")["messages"].chunks
    ('a', 'b')
    >>> refs.remember("t", "", "c2", {})
    >>> refs.get("t", "", "c1") is None
    True
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping

from agentmesh.checkpoint.langgraph._chunks import ChannelRef

__all__ = ["DEFAULT_REFS_CAPACITY", "RecentRefs"]

DEFAULT_REFS_CAPACITY = 1024
"""Checkpoints whose storage a saver remembers."""

_Key = tuple[str, str, str]


class RecentRefs:
    """A bounded, thread-safe map from ``(thread, namespace, checkpoint id)`` to channel refs.

    Args:
        capacity: Checkpoints kept; the least recently used go first.
    """

    def __init__(self, capacity: int = DEFAULT_REFS_CAPACITY) -> None:
        self._capacity = max(1, capacity)
        self._entries: OrderedDict[_Key, Mapping[str, ChannelRef]] = OrderedDict()
        self._latest: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def remember(
        self, thread_id: str, namespace: str, checkpoint_id: str, refs: Mapping[str, ChannelRef]
    ) -> None:
        """Remember how a stored checkpoint's channels are stored."""
        key = (thread_id, namespace, checkpoint_id)
        with self._lock:
            self._entries[key] = refs
            self._entries.move_to_end(key)
            self._latest[(thread_id, namespace)] = checkpoint_id
            while len(self._entries) > self._capacity:
                (thread, ns, gone), _ = self._entries.popitem(last=False)
                if self._latest.get((thread, ns)) == gone:
                    del self._latest[(thread, ns)]

    def get(
        self, thread_id: str, namespace: str, checkpoint_id: str | None
    ) -> Mapping[str, ChannelRef] | None:
        """The refs of a checkpoint, or ``None`` when it is not remembered."""
        if checkpoint_id is None:
            return None
        key = (thread_id, namespace, checkpoint_id)
        with self._lock:
            refs = self._entries.get(key)
            if refs is not None:
                self._entries.move_to_end(key)
            return refs

    def latest(self, thread_id: str, namespace: str) -> Mapping[str, ChannelRef] | None:
        """The refs of the checkpoint of a namespace remembered last, if any."""
        with self._lock:
            checkpoint_id = self._latest.get((thread_id, namespace))
            if checkpoint_id is None:
                return None
            return self._entries.get((thread_id, namespace, checkpoint_id))

    def forget_thread(self, thread_id: str) -> None:
        """Forget every checkpoint of a thread (it was deleted, pruned or rewritten)."""
        with self._lock:
            for key in [key for key in self._entries if key[0] == thread_id]:
                del self._entries[key]
            for key in [key for key in self._latest if key[0] == thread_id]:
                del self._latest[key]

    def clear(self) -> None:
        """Forget everything (checkpoints of unknown threads were deleted)."""
        with self._lock:
            self._entries.clear()
            self._latest.clear()

    def __len__(self) -> int:
        """The number of checkpoints remembered."""
        with self._lock:
            return len(self._entries)
