"""Resuming a failed or stopped run in the app: :func:`resume` and the plan from the environment.

``agentmesh resume RUN_ID -- python app.py`` runs the app with ``AGENTMESH_RESUME`` set to the
run's resume plan (JSON: ``run_id``, ``thread_id``, ``checkpoint_id``, ``framework``…, as the
collector's ``GET /v1/runs/{run}/resume`` answers). Apps that retry failed runs themselves call
:func:`resume` instead (with the plan, or a run id and the collector's URL).

The first LangGraph run of the plan's thread started after that is resumed: its input is
replaced by ``None`` and its config names the plan's checkpoint, so LangGraph continues from the
last good handoff (completed steps are not run again), and its workflow span records
``agentmesh.resume.checkpoint_id`` and ``agentmesh.resume.from_run_id``. A plan is used once.
LangGraph graphs need a checkpointer to resume (the plan's checkpoint is one of its checkpoints).
A CrewAI plan resumes the next crew kickoff from the task checkpoints of the plan's run (with
``AGENTMESH_CHECKPOINT_URL`` naming the store they were written to): completed tasks are
restored, not run again.

Fail-open: a malformed plan is logged and ignored; the app runs as if there were none.

Example:
    >>> target = ResumeTarget.parse('{"run_id": "r1", "thread_id": "t1", "checkpoint_id": "c1"}')
    >>> (target.run_id, target.thread_id, target.checkpoint_id)
    ('r1', 't1', 'c1')
"""

from __future__ import annotations

import json
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from agentmesh.core import ConfigError, ResumeError, get_logger
from agentmesh.core.resume_plan import resume_refusal
from agentmesh.core.settings import RESUME_ENV
from agentmesh.core.tls import client_ssl_context

__all__ = ["ResumeTarget", "claim_crewai", "claim_langgraph", "clear_resume", "resume"]

_log = get_logger(__name__)
_TIMEOUT_SECONDS: Final = 10.0


@dataclass(frozen=True, slots=True)
class ResumeTarget:
    """Where a run resumes.

    Attributes:
        run_id: The failed or stopped run.
        thread_id: Its LangGraph thread, when it had one.
        checkpoint_id: The checkpoint to continue from (``None``: start over).
        framework: ``langgraph`` or ``crewai``, when known.
    """

    run_id: str
    thread_id: str | None
    checkpoint_id: str | None
    framework: str | None = None

    @classmethod
    def parse(cls, text: str | Mapping[str, object]) -> ResumeTarget:
        """Read a plan (JSON text or an already decoded object).

        Args:
            text: The plan.

        Returns:
            The target.

        Raises:
            ConfigError: The plan is not a JSON object with a ``run_id``.
        """
        try:
            raw: object = json.loads(text) if isinstance(text, str) else text
        except ValueError as exc:
            raise ConfigError(f"{RESUME_ENV}: not JSON ({exc})") from exc
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{RESUME_ENV}: expected a JSON object with run_id")
        plan = cast("Mapping[str, object]", raw)
        run_id = plan.get("run_id")
        if not isinstance(run_id, str) or not run_id:
            raise ConfigError(f"{RESUME_ENV}: the plan has no run_id")
        return cls(
            run_id,
            _text(plan.get("thread_id")),
            _text(plan.get("checkpoint_id")),
            _text(plan.get("framework")),
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class _Pending:
    """The plan waiting for its run (one per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._target: ResumeTarget | None = None
        self._loaded = False

    def set(self, target: ResumeTarget | None) -> None:
        with self._lock:
            self._target, self._loaded = target, True

    def claim(self, thread_id: str | None, framework: str) -> ResumeTarget | None:
        with self._lock:
            if not self._loaded:
                self._target, self._loaded = _from_environment(), True
            target = self._target
            if target is None or target.framework not in (None, framework):
                return None
            if target.thread_id is not None and target.thread_id != thread_id:
                return None
            self._target = None
            return target


_PENDING: Final = _Pending()


def _from_environment() -> ResumeTarget | None:
    text = os.environ.get(RESUME_ENV)
    if not text:
        return None
    try:
        target = ResumeTarget.parse(text)
    except ConfigError as exc:
        _log.warning("resume plan ignored", error=str(exc))
        return None
    _log.info("resume plan loaded", run_id=target.run_id, checkpoint_id=target.checkpoint_id)
    return target


def resume(
    plan: ResumeTarget | Mapping[str, object] | str,
    *,
    collector_url: str | None = None,
    force: bool = False,
) -> ResumeTarget:
    """Resume a run in this process: the next run of its thread continues from its checkpoint.

    Args:
        plan: The plan (as the collector answers it, or its JSON text), or a run id with
            ``collector_url``.
        collector_url: The collector's OTLP/HTTP endpoint (``http://127.0.0.1:4318``) to ask
            for the plan of the run id ``plan``.
        force: Resume even a run that completed or that another run already continues (its
            work runs again).

    Returns:
        The target now waiting for its run.

    Raises:
        ConfigError: The plan is malformed, or the collector cannot give it.
        ResumeError: The run completed, or was already resumed (and ``force`` is not set).
    """
    if isinstance(plan, ResumeTarget):
        target = plan
    else:
        if isinstance(plan, str) and collector_url is not None:
            raw: Mapping[str, object] | str = _fetch(collector_url, plan)
        elif isinstance(plan, str) and not plan.lstrip().startswith("{"):
            raise ConfigError(
                f"resume({plan!r}): a run id needs collector_url= (the collector's OTLP/HTTP "
                "endpoint, http://127.0.0.1:4318) to fetch its plan; or pass the plan itself"
            )
        else:
            raw = plan
        target = ResumeTarget.parse(raw)
        refusal = resume_refusal(json.loads(raw) if isinstance(raw, str) else raw)
        if refusal is not None and not force:
            raise ResumeError(f"{refusal} (force=True resumes it anyway)")
    _PENDING.set(target)
    return target


def clear_resume() -> None:
    """Forget a plan that has not been used (and ignore ``AGENTMESH_RESUME``)."""
    _PENDING.set(None)


def claim_langgraph(thread_id: str | None) -> ResumeTarget | None:
    """Take the waiting plan for a LangGraph run of ``thread_id``, if it is that thread's.

    Args:
        thread_id: The run's ``thread_id``.

    Returns:
        The target (now used up), or ``None``.
    """
    if thread_id is None:
        return None
    return _PENDING.claim(thread_id, "langgraph")


def claim_crewai() -> ResumeTarget | None:
    """Take the waiting plan for a CrewAI crew kickoff, if it is one for CrewAI (or any).

    Returns:
        The target (now used up), or ``None``.
    """
    return _PENDING.claim(None, "crewai")


def _fetch(base: str, run_id: str) -> Mapping[str, Any]:
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"collector URL {base!r}: expected http:// or https://")
    url = base.rstrip("/") + "/v1/runs/" + urllib.parse.quote(run_id, safe="") + "/resume"
    try:
        context = client_ssl_context() if url.startswith("https://") else None
        with urllib.request.urlopen(  # noqa: S310 - http(s) only, checked above
            url, timeout=_TIMEOUT_SECONDS, context=context
        ) as response:
            return cast("Mapping[str, Any]", json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raise ConfigError(
            f"cannot read the resume plan of {run_id!r} from {base}: {_error_of(exc)}"
        ) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the resume plan of {run_id!r} from {base}: {exc}") from exc


def _error_of(exc: urllib.error.HTTPError) -> str:
    """The collector's own words (``{"error": ...}``), or the HTTP status."""
    try:
        body: object = json.loads(exc.read())
    except (OSError, ValueError):
        body = None
    if isinstance(body, Mapping):
        error = cast("Mapping[str, object]", body).get("error")
        if isinstance(error, str) and error:
            return error
    return f"HTTP {exc.code} {exc.reason}"
