"""Chunks a saver wrote or read lately, so reads need not fetch them again: :class:`ChunkCache`.

A chunk's id is the hash of its content (:mod:`._chunks`), so a cached chunk is never stale: the
only question is whether it is still held. A read of a checkpoint asks the store to leave out
the chunks the cache holds for the thread's latest known checkpoint (``skip_channels``) and
takes them from here; a multi-turn conversation then reads only what changed since this
process last saw the thread. The cache keeps chunks uncompressed (a read then neither fetches
nor decompresses them) within a byte budget, least recently used out first.
:meth:`ChunkCache.unpacked` decompresses the chunks a store returned, each once while it is
held: a listing of a long thread returns the same chunks with every checkpoint.

Example:
    >>> from agentmesh.checkpoint.store.base import Blob
    >>> cache = ChunkCache(budget=1200)  # 100 bytes counted per entry on top of its data
    >>> for name in "abcde":
    ...     cache.put(name, Blob("am-msgpack", name.encode() * 200))
    >>> cache.get("a") is None, cache.get("e") is not None, len(cache)  # "a" went first
    (True, True, 4)
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from agentmesh.checkpoint.langgraph._chunks import chunk_id_of, is_chunk_channel
from agentmesh.checkpoint.langgraph._compress import unpack
from agentmesh.checkpoint.store.base import Blob, StoredCheckpoint

__all__ = ["DEFAULT_CHUNK_CACHE_BYTES", "ChunkCache"]

DEFAULT_CHUNK_CACHE_BYTES = 64 << 20
"""The byte budget of a saver's chunk cache (64 MiB)."""

_OVERHEAD = 100
"""Bytes counted per entry on top of its payload."""


class ChunkCache:
    """A thread-safe LRU of chunk blobs by chunk id, within a byte budget.

    Args:
        budget: Bytes of payload (plus a small overhead per entry) kept at most; 0 keeps none.
    """

    def __init__(self, budget: int = DEFAULT_CHUNK_CACHE_BYTES) -> None:
        self._budget = max(0, budget)
        self._items: OrderedDict[str, Blob] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, chunk_id: str) -> Blob | None:
        """The chunk, if held (it becomes the most recently used)."""
        with self._lock:
            blob = self._items.get(chunk_id)
            if blob is not None:
                self._items.move_to_end(chunk_id)
            return blob

    def held(self, chunk_ids: tuple[str, ...]) -> list[str]:
        """The ids among ``chunk_ids`` the cache holds."""
        with self._lock:
            return [chunk_id for chunk_id in chunk_ids if chunk_id in self._items]

    def put(self, chunk_id: str, blob: Blob) -> None:
        """Hold a chunk (a chunk larger than a quarter of the budget is not held)."""
        cost = len(blob.data) + _OVERHEAD
        if cost > self._budget // 4:
            return
        with self._lock:
            old = self._items.pop(chunk_id, None)
            if old is not None:
                self._size -= len(old.data) + _OVERHEAD
            self._items[chunk_id] = blob
            self._size += cost
            while self._size > self._budget:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted.data) + _OVERHEAD

    def unpacked(self, stored: StoredCheckpoint) -> StoredCheckpoint:
        """A read checkpoint with its chunks uncompressed, and held for later reads.

        A chunk the cache holds is taken from it rather than decompressed again (a chunk's id
        names its content, so the two are the same bytes).

        Raises:
            CheckpointSerdeError: A chunk says it is zstd but does not decompress.
        """
        values: dict[str, Blob] | None = None
        for channel, blob in stored.values.items():
            if not is_chunk_channel(channel):
                continue
            chunk_id = chunk_id_of(channel)
            plain = self.get(chunk_id)
            if plain is None:
                plain = Blob(*unpack(blob))
                self.put(chunk_id, plain)
            if values is None:
                values = dict(stored.values)
            values[channel] = plain
        if values is None:
            return stored
        return StoredCheckpoint(record=stored.record, values=values, writes=stored.writes)

    def __len__(self) -> int:
        """The number of chunks held."""
        with self._lock:
            return len(self._items)
