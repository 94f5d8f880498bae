"""When resuming a run would repeat work: :func:`resume_refusal`, shared by the CLI and the app.

A resume plan (``GET /v1/runs/{run}/resume``) names the run's status and, when another run
already continues it, that run (``resumed_by``). Resuming a completed run, or one already
resumed, runs its work again: ``agentmesh resume`` and
:func:`agentmesh.instrumentation.resume` refuse both unless forced.

Example:
    >>> resume_refusal({"run_id": "r1", "status": "failed"}) is None
    True
    >>> resume_refusal({"run_id": "r1", "status": "completed"})
    'run r1 completed: there is nothing to resume'
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["resume_refusal"]


def resume_refusal(plan: Mapping[str, object]) -> str | None:
    """Why resuming a plan's run would repeat work, in plain words.

    Args:
        plan: The plan, as the collector answers it.

    Returns:
        The reason, naming what to do instead; ``None`` when resuming repeats nothing.
    """
    run_id = plan.get("run_id")
    resumed_by = plan.get("resumed_by")
    if isinstance(resumed_by, str) and resumed_by:
        return (
            f"run {run_id} was already resumed by run {resumed_by}: resuming it again would run "
            f"that work twice (if run {resumed_by} failed too, resume it instead)"
        )
    if plan.get("status") == "completed":
        return f"run {run_id} completed: there is nothing to resume"
    return None
