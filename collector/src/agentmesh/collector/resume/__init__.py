"""Resuming failed and stopped runs from their last good handoff.

:func:`resume_plan` works out where a run resumes from its stored spans and detections;
:func:`resume_routes` serves the plan at ``GET /v1/runs/{run}/resume``; ``agentmesh resume``
reads it and runs the app again with it (``AGENTMESH_RESUME``).
"""

from agentmesh.collector.resume.endpoint import RESUME_PATH, find_plan, resume_routes
from agentmesh.collector.resume.plan import ResumePlan, resume_plan

__all__ = ["RESUME_PATH", "ResumePlan", "find_plan", "resume_plan", "resume_routes"]
