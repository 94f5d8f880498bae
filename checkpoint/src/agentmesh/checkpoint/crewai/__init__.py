"""CrewAI on AgentMesh checkpoint stores: flow persistence and task-level crew checkpoints.

- :class:`AgentMeshFlowPersistence`: a CrewAI ``FlowPersistence`` (for ``@persist`` and
  ``Flow(persistence=…)``) on any checkpoint store; datetimes, UUIDs and nested models survive,
  old saves load into a grown state model, failed writes raise.
- :class:`CrewCheckpoints`: store each completed task's output of a crew, and resume a failed
  run after its last completed task without running the earlier tasks again.

Needs the ``crewai`` extra (``pip install 'agentmesh-checkpoint[crewai]'``).

Example:
    >>> from agentmesh.checkpoint.crewai import AgentMeshFlowPersistence
    >>> AgentMeshFlowPersistence.from_url("memory://").persistence_type
    'AgentMeshFlowPersistence'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.checkpoint.crewai.persistence import (
        FLOW_NAMESPACE,
        PENDING_NAMESPACE,
        AgentMeshFlowPersistence,
    )
    from agentmesh.checkpoint.crewai.tasks import TASKS_NAMESPACE, CrewCheckpoints, CrewRun

__all__ = [
    "FLOW_NAMESPACE",
    "PENDING_NAMESPACE",
    "TASKS_NAMESPACE",
    "AgentMeshFlowPersistence",
    "CrewCheckpoints",
    "CrewRun",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "AgentMeshFlowPersistence": "agentmesh.checkpoint.crewai.persistence",
        "CrewCheckpoints": "agentmesh.checkpoint.crewai.tasks",
        "CrewRun": "agentmesh.checkpoint.crewai.tasks",
        "FLOW_NAMESPACE": "agentmesh.checkpoint.crewai.persistence",
        "PENDING_NAMESPACE": "agentmesh.checkpoint.crewai.persistence",
        "TASKS_NAMESPACE": "agentmesh.checkpoint.crewai.tasks",
    },
)
