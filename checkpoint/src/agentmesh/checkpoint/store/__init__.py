"""Checkpoint storage: the store interface, its records, the memory store and open_store.

:class:`CheckpointStore` is the interface, :class:`MemoryCheckpointStore` its in-process
reference implementation, and :func:`open_store` opens any backend from a URL.

The optional backends (DuckDB, Redis, Postgres) are not imported here: open them with
:func:`open_store` (``duckdb://``, ``redis://``, ``postgresql://``) or import them from their
modules (``agentmesh.checkpoint.store.redis``…), which needs the matching extra installed.
"""

from __future__ import annotations

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
