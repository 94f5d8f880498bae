"""Where a graph's checkpointer keeps its checkpoints: :func:`checkpointer_store_url`.

The answer goes on the spans beside the checkpoint ids read from the checkpointer
(``agentmesh.handoff.checkpoint.store_url``), so a resume plan can say where its checkpoint
lives. AgentMesh's own savers say it themselves (``AgentMeshSaver.store_url``: the store's URL,
password masked); LangGraph's ``InMemorySaver`` keeps them in the process (``memory://``, gone
when it exits). Other checkpointers are not named. Nothing is imported for the question: a
checkpointer can only be one of these classes when its module is already loaded.
"""

from __future__ import annotations

import sys
from typing import Final

from agentmesh.core.urls import MEMORY_STORE_URL

__all__ = ["checkpointer_store_url"]

_AGENTMESH_SAVERS: Final = "agentmesh.checkpoint.langgraph._saver"
_LANGGRAPH_MEMORY: Final = "langgraph.checkpoint.memory"


def checkpointer_store_url(checkpointer: object) -> str | None:
    """Tell where a LangGraph checkpointer stores its checkpoints, when it is known.

    Args:
        checkpointer: The graph's checkpointer (``None``, ``True`` or ``False`` for none of its
            own).

    Returns:
        The store's URL, password masked (``memory://`` for an in-process saver), or ``None``
        for a checkpointer AgentMesh does not know.

    Example:
        >>> checkpointer_store_url(None) is None
        True
    """
    if checkpointer is None or isinstance(checkpointer, bool):
        return None
    if _AGENTMESH_SAVERS in sys.modules:
        from agentmesh.checkpoint.langgraph import AgentMeshSaver

        if isinstance(checkpointer, AgentMeshSaver):
            return checkpointer.store_url
    if _LANGGRAPH_MEMORY in sys.modules:
        from langgraph.checkpoint.memory import InMemorySaver

        if isinstance(checkpointer, InMemorySaver):
            return MEMORY_STORE_URL
    return None
