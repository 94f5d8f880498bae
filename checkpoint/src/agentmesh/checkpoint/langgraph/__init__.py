"""LangGraph checkpoint savers on the AgentMesh checkpoint store.

:class:`MemorySaver`, :class:`DuckDBSaver`, :class:`RedisSaver` and :class:`PostgresSaver` are
drop-in LangGraph checkpointers (sync and async, every capability of the official conformance
suite: put, writes, get, list, delete thread, delete for runs, copy thread, prune). Open them
with ``from_conn_string`` as ``with`` (sync use) or ``async with`` (async use)::

    async with RedisSaver.from_conn_string("redis://localhost:6379/0") as saver:
        graph = builder.compile(checkpointer=saver)
        await graph.ainvoke(inputs, {"configurable": {"thread_id": "t1"}})

Two runs of one thread racing do not fork its history: the second writer's checkpoint is
refused with :class:`~agentmesh.core.CheckpointConflictError`. :class:`AgentMeshSaver` runs on
any :class:`~agentmesh.checkpoint.store.base.CheckpointStore` you open yourself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.checkpoint.langgraph._context import SaverContext
    from agentmesh.checkpoint.langgraph._saver import AgentMeshSaver
    from agentmesh.checkpoint.langgraph._sync import SyncCheckpointStore, SyncTwin
    from agentmesh.checkpoint.langgraph.savers import (
        DuckDBSaver,
        MemorySaver,
        PostgresSaver,
        RedisSaver,
    )
    from agentmesh.checkpoint.langgraph.strict_serde import StrictJsonPlusSerializer

__all__ = [
    "AgentMeshSaver",
    "DuckDBSaver",
    "MemorySaver",
    "PostgresSaver",
    "RedisSaver",
    "SaverContext",
    "StrictJsonPlusSerializer",
    "SyncCheckpointStore",
    "SyncTwin",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "AgentMeshSaver": "agentmesh.checkpoint.langgraph._saver",
        "DuckDBSaver": "agentmesh.checkpoint.langgraph.savers",
        "MemorySaver": "agentmesh.checkpoint.langgraph.savers",
        "PostgresSaver": "agentmesh.checkpoint.langgraph.savers",
        "RedisSaver": "agentmesh.checkpoint.langgraph.savers",
        "SaverContext": "agentmesh.checkpoint.langgraph._context",
        "StrictJsonPlusSerializer": "agentmesh.checkpoint.langgraph.strict_serde",
        "SyncCheckpointStore": "agentmesh.checkpoint.langgraph._sync",
        "SyncTwin": "agentmesh.checkpoint.langgraph._sync",
    },
)
