"""Task checkpoints for instrumented crews, and resuming a crew run from a resume plan.

With ``AGENTMESH_CHECKPOINT_URL`` set, each outermost crew kickoff is attached to
:class:`~agentmesh.checkpoint.crewai.CrewCheckpoints` under its run id: every completed task's
output is stored. When a resume plan for CrewAI waits (``agentmesh resume RUN_ID -- …`` or
:func:`agentmesh.instrumentation.resume.resume`), the next kickoff resumes the plan's run
instead: tasks whose output was stored are restored, not run again, and the crew continues after
the last completed task.

Fail-open: without the ``agentmesh-checkpoint`` package, or when the store cannot be opened,
the kickoff runs as it would have (one warning).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from agentmesh.core.log import get_logger
from agentmesh.core.urls import checkpoint_store_url, masked_url
from agentmesh.instrumentation.resume import ResumeTarget, claim_crewai

if TYPE_CHECKING:
    from agentmesh.checkpoint.crewai import CrewCheckpoints

__all__ = ["attach_task_checkpoints"]

_log = get_logger(__name__)
_lock = threading.Lock()
_by_url: dict[str, CrewCheckpoints | None] = {}


def _checkpoints(url: str) -> CrewCheckpoints | None:
    with _lock:
        if url not in _by_url:
            try:
                from agentmesh.checkpoint.crewai import CrewCheckpoints
            except ImportError as exc:
                _log.warning(
                    "crew_task_checkpoints_disabled",
                    reason="install agentmesh-instrumentation[checkpoints] and crewai",
                    error=str(exc),
                )
                _by_url[url] = None
            else:
                _by_url[url] = CrewCheckpoints(url, on_error="log")
        return _by_url[url]


def attach_task_checkpoints(
    crew: Any, run_id: str
) -> tuple[AbstractContextManager[object] | None, ResumeTarget | None, str | None]:
    """Attach an outermost crew kickoff to task checkpoints (and a waiting resume plan).

    Args:
        crew: The crew being kicked off.
        run_id: The kickoff's run id.

    Returns:
        The entered attachment (exit it when the kickoff ends) or ``None``; the resume plan
        used, if any; and where the task checkpoints are stored (the store's URL, password
        masked), when they are.
    """
    from agentmesh.instrumentation.settings import InstrumentationSettings

    target = claim_crewai()
    url = InstrumentationSettings.load().checkpoint_url
    if url is None:
        if target is not None:
            _log.warning(
                "crew_resume_ignored",
                run_id=target.run_id,
                reason="resuming a crew needs the task checkpoints of its run: set "
                "AGENTMESH_CHECKPOINT_URL to the store the run used",
            )
        return None, None, None
    checkpoints = _checkpoints(url)
    if checkpoints is None:
        return None, None, None
    # the plan names a checkpoint, so some task had completed: not in this store?
    named = target is not None and target.checkpoint_id is not None
    if target is not None and named and not checkpoints.completed(crew, target.run_id):
        _log.error(
            "crew_resume_found_no_task_checkpoints",
            run_id=target.run_id,
            checkpoint_id=target.checkpoint_id,
            store=masked_url(url),
            reason="every task of the crew runs again: was the run checkpointed with another "
            "AGENTMESH_CHECKPOINT_URL?",
        )
    attachment = (
        checkpoints.resume(crew, target.run_id)
        if target is not None
        else checkpoints.attach(crew, run_id=run_id)
    )
    attachment.__enter__()
    return attachment, target, checkpoint_store_url(url)
