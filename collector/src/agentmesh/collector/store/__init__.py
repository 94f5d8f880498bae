"""Storage of spans, run graphs and detections: one async interface, several backends."""

from agentmesh.collector.store.base import CostGroup, CostRow, RunSummary, SpanStore, StoredGraph
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
    "RunSummary",
    "SpanStore",
    "StoredGraph",
    "make_store",
    "open_store",
]
