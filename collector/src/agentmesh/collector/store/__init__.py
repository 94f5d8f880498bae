"""Storage of spans, run graphs and detections: one async interface, several backends."""

from agentmesh.collector.store.base import RunSummary, SpanStore, StoredGraph
from agentmesh.collector.store.duckdb_store import DuckDBStore
from agentmesh.collector.store.memory_store import MemoryStore

__all__ = ["DuckDBStore", "MemoryStore", "RunSummary", "SpanStore", "StoredGraph"]
