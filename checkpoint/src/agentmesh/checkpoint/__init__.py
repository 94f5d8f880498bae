"""AgentMesh checkpoints: the context that crosses agent boundaries, stored so runs can resume.

- :mod:`agentmesh.checkpoint.store`: one async checkpoint store (memory, DuckDB, Redis,
  Postgres) with idempotent puts, linear storage, compare-and-set against forked chains,
  retention and live migrations;
- :mod:`agentmesh.checkpoint.langgraph`: LangGraph savers on it (``PostgresSaver``,
  ``RedisSaver``, ``DuckDBSaver``, ``MemorySaver``), passing the official conformance suite;
- :mod:`agentmesh.checkpoint.crewai`: CrewAI flow persistence and task-level crew checkpoints;
- :class:`HandoffCheckpointWriter`: what the instrumentation writes handoff contexts with;
- :class:`SafeSerializer`: datetimes, UUIDs, Pydantic models, LangChain messages; no pickles.

The framework modules are imported on their own (they need their extras); this module imports
only the store interface, the serializer and the writer.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.checkpoint.handoff_writer import (
        HandoffCheckpoint,
        HandoffCheckpointWriter,
        WriterStats,
        handoff_history,
        read_handoff,
    )
    from agentmesh.checkpoint.serde import SafeSerializer
    from agentmesh.checkpoint.store import (
        Blob,
        CheckpointRecord,
        CheckpointStore,
        ListQuery,
        MemoryCheckpointStore,
        StoredCheckpoint,
        WriteRecord,
        open_store,
    )

__all__ = [
    "Blob",
    "CheckpointRecord",
    "CheckpointStore",
    "HandoffCheckpoint",
    "HandoffCheckpointWriter",
    "ListQuery",
    "MemoryCheckpointStore",
    "SafeSerializer",
    "StoredCheckpoint",
    "WriteRecord",
    "WriterStats",
    "handoff_history",
    "open_store",
    "read_handoff",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Blob": "agentmesh.checkpoint.store",
        "CheckpointRecord": "agentmesh.checkpoint.store",
        "CheckpointStore": "agentmesh.checkpoint.store",
        "HandoffCheckpoint": "agentmesh.checkpoint.handoff_writer",
        "HandoffCheckpointWriter": "agentmesh.checkpoint.handoff_writer",
        "ListQuery": "agentmesh.checkpoint.store",
        "MemoryCheckpointStore": "agentmesh.checkpoint.store",
        "SafeSerializer": "agentmesh.checkpoint.serde",
        "StoredCheckpoint": "agentmesh.checkpoint.store",
        "WriteRecord": "agentmesh.checkpoint.store",
        "WriterStats": "agentmesh.checkpoint.handoff_writer",
        "handoff_history": "agentmesh.checkpoint.handoff_writer",
        "open_store": "agentmesh.checkpoint.store",
        "read_handoff": "agentmesh.checkpoint.handoff_writer",
    },
)
