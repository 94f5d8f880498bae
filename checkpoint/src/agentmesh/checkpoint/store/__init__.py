"""Checkpoint storage: the store interface, its records, the memory store and open_store.

:class:`CheckpointStore` is the interface, :class:`MemoryCheckpointStore` its in-process
reference implementation, and :func:`open_store` opens any backend from a URL.

The optional backends (DuckDB, Redis, Postgres) are not imported here: open them with
:func:`open_store` (``duckdb://``, ``redis://``, ``postgresql://``) or import them from their
modules (``agentmesh.checkpoint.store.redis``…), which needs the matching extra installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.checkpoint.store.base import (
        Blob,
        CheckpointRecord,
        CheckpointStore,
        ListQuery,
        StoredCheckpoint,
        WriteRecord,
    )
    from agentmesh.checkpoint.store.factory import open_store
    from agentmesh.checkpoint.store.memory import MemoryCheckpointStore

__all__ = [
    "Blob",
    "CheckpointRecord",
    "CheckpointStore",
    "ListQuery",
    "MemoryCheckpointStore",
    "StoredCheckpoint",
    "WriteRecord",
    "open_store",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Blob": "agentmesh.checkpoint.store.base",
        "CheckpointRecord": "agentmesh.checkpoint.store.base",
        "CheckpointStore": "agentmesh.checkpoint.store.base",
        "ListQuery": "agentmesh.checkpoint.store.base",
        "MemoryCheckpointStore": "agentmesh.checkpoint.store.memory",
        "StoredCheckpoint": "agentmesh.checkpoint.store.base",
        "WriteRecord": "agentmesh.checkpoint.store.base",
        "open_store": "agentmesh.checkpoint.store.factory",
    },
)
