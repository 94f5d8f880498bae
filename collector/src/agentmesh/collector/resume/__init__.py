"""Resuming failed and stopped runs from their last good handoff.

:func:`resume_plan` works out where a run resumes from its stored spans and detections;
:func:`resume_routes` serves the plan at ``GET /v1/runs/{run}/resume``; ``agentmesh resume``
reads it and runs the app again with it (``AGENTMESH_RESUME``).
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.resume.endpoint import RESUME_PATH, find_plan, resume_routes
    from agentmesh.collector.resume.plan import ResumePlan, resume_plan

__all__ = ["RESUME_PATH", "ResumePlan", "find_plan", "resume_plan", "resume_routes"]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "RESUME_PATH": "agentmesh.collector.resume.endpoint",
        "ResumePlan": "agentmesh.collector.resume.plan",
        "find_plan": "agentmesh.collector.resume.endpoint",
        "resume_plan": "agentmesh.collector.resume.plan",
        "resume_routes": "agentmesh.collector.resume.endpoint",
    },
)
