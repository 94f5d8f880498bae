"""Storage of spans, run graphs and detections: one async interface, several backends."""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.store.base import (
        CostGroup,
        CostRow,
        Pruned,
        RunSummary,
        SpanStore,
        StoredGraph,
    )
    from agentmesh.collector.store.duckdb_store import DuckDBStore
    from agentmesh.collector.store.factory import make_store, open_store
    from agentmesh.collector.store.memory_store import MemoryStore
    from agentmesh.collector.store.postgres_store import PostgresStore

__all__ = [
    "CostGroup",
    "CostRow",
    "DuckDBStore",
    "MemoryStore",
    "PostgresStore",
    "Pruned",
    "RunSummary",
    "SpanStore",
    "StoredGraph",
    "make_store",
    "open_store",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "CostGroup": "agentmesh.collector.store.base",
        "CostRow": "agentmesh.collector.store.base",
        "DuckDBStore": "agentmesh.collector.store.duckdb_store",
        "MemoryStore": "agentmesh.collector.store.memory_store",
        "PostgresStore": "agentmesh.collector.store.postgres_store",
        "Pruned": "agentmesh.collector.store.base",
        "RunSummary": "agentmesh.collector.store.base",
        "SpanStore": "agentmesh.collector.store.base",
        "StoredGraph": "agentmesh.collector.store.base",
        "make_store": "agentmesh.collector.store.factory",
        "open_store": "agentmesh.collector.store.factory",
    },
)
