"""Which checkpoints a saver may only extend while they are the newest: :class:`Fence`.

A saver remembers, per thread and namespace, the checkpoints it saw as the newest (read without
a ``checkpoint_id``, ``None`` for an empty namespace) and the checkpoints it put itself. A put
whose parent is one of them asks the store for compare-and-set (``check_extends``): when
another writer moved the chain on in between, the put is refused instead of forking the thread.
A checkpoint read by its id on purpose (time travel) is forgotten, so a put from it forks as
the caller asked.

The memory is bounded: the least recently used entries go first.

Example:
    >>> fence = Fence(capacity=2)
    >>> fence.remember("t", "", None)
    >>> fence.fenced("t", "", None), fence.fenced("t", "", "c1")
    (True, False)
    >>> fence.remember("t", "", "c1")
    >>> fence.remember("t", "", "c2")
    >>> fence.fenced("t", "", None)
    False
    >>> fence.release("t", "", "c2")
    >>> fence.fenced("t", "", "c2"), fence.fenced("t", "", "c1")
    (False, True)
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["DEFAULT_CAPACITY", "Fence"]

DEFAULT_CAPACITY = 65536
"""Entries a fence keeps (each a thread, a namespace and a checkpoint id)."""

_Key = tuple[str, str, str | None]


class Fence:
    """A bounded, thread-safe set of ``(thread, namespace, checkpoint id)`` a writer extends.

    Args:
        capacity: Entries kept; the least recently used go first.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = max(1, capacity)
        self._entries: OrderedDict[_Key, None] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """How many entries are kept."""
        return self._capacity

    def remember(self, thread_id: str, namespace: str, checkpoint_id: str | None) -> None:
        """Remember a checkpoint (``None``: the empty namespace) as one to extend only as head."""
        key = (thread_id, namespace, checkpoint_id)
        with self._lock:
            self._entries[key] = None
            self._entries.move_to_end(key)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def release(self, thread_id: str, namespace: str, checkpoint_id: str) -> None:
        """Forget a checkpoint: it was addressed on purpose, a put from it is a wanted fork."""
        with self._lock:
            self._entries.pop((thread_id, namespace, checkpoint_id), None)

    def fenced(self, thread_id: str, namespace: str, checkpoint_id: str | None) -> bool:
        """Whether a child of this checkpoint must be put with compare-and-set."""
        with self._lock:
            return (thread_id, namespace, checkpoint_id) in self._entries

    def __len__(self) -> int:
        """The number of entries kept."""
        with self._lock:
            return len(self._entries)
