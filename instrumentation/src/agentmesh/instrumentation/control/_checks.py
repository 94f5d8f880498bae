"""What the app asks of the control document: is this run stopped, which models are open.

:func:`check_run` raises :class:`~agentmesh.core.errors.RunStoppedError` for a run the collector
stopped (the one exception the instrumentation raises into the application, on purpose) and
logs a warning, once per run and detection, for a run it only warns about. Anything else that
goes wrong here is logged and ignored (fail-open).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from agentmesh.core.errors import RunStoppedError
from agentmesh.core.log import get_logger
from agentmesh.instrumentation._failopen import report
from agentmesh.instrumentation.control._document import (
    EMPTY_DOCUMENT,
    ControlDocument,
    RunControl,
)
from agentmesh.instrumentation.control._runtime import control_client
from agentmesh.instrumentation.run_context import current_run_id

__all__ = ["check_current_run", "check_run", "current", "open_breakers"]

_log = get_logger(__name__)

_MAX_LOGGED: Final = 4096
_NONE: Final[frozenset[str]] = frozenset()

_logged_lock = threading.Lock()
_logged: OrderedDict[tuple[str, str, str], None] = OrderedDict()


def current() -> ControlDocument:
    """Return the latest control document (never raises, never blocks).

    Returns:
        The document; empty (version 0) when control is off or nothing was received yet.
    """
    client = control_client()
    return client.document if client is not None else EMPTY_DOCUMENT


def _first_time(entry: RunControl) -> bool:
    key = (entry.run_id, entry.detection_id, entry.action)
    with _logged_lock:
        if key in _logged:
            return False
        _logged[key] = None
        if len(_logged) > _MAX_LOGGED:
            _logged.popitem(last=False)
    return True


def _log_once(entry: RunControl) -> None:
    if not _first_time(entry):
        return
    event = (
        "agentmesh.control.run_stopped"
        if entry.action == "stop"
        else "agentmesh.control.run_warned"
    )
    _log.warning(
        event,
        run_id=entry.run_id,
        detection_id=entry.detection_id,
        detection_type=entry.type,
        explanation=entry.explanation,
        resume_checkpoint_id=entry.resume_checkpoint_id,
    )


def _entry(run_id: str) -> RunControl | None:
    try:
        entry = current().runs.get(run_id)
        if entry is not None:
            for warning in entry.warnings:  # every detection that warns the run, once each
                _log_once(warning)
            _log_once(entry)
        return entry
    except Exception as exc:  # noqa: BLE001 - fail-open (inline: this runs on every call)
        report("control.check_run", exc)
        return None


def check_run(run_id: str | None) -> None:
    """Stop a run the collector stopped; warn (once) about a run it warns about.

    Args:
        run_id: The run, or ``None`` (nothing to check).

    Raises:
        RunStoppedError: The collector's decision for this run is ``stop``.
    """
    if not run_id:
        return
    entry = _entry(run_id)
    if entry is not None and entry.action == "stop":
        raise RunStoppedError(
            entry.run_id,
            entry.type,
            entry.explanation,
            entry.detection_id,
            entry.resume_checkpoint_id,
        )


def check_current_run() -> None:
    """Check the run whose id the current baggage carries (agent-step wrappers call this).

    Raises:
        RunStoppedError: The collector stopped the current run.
    """
    try:
        if not current().runs:  # the usual case: nothing listed, no baggage lookup
            return
        run_id = current_run_id()
    except Exception as exc:  # noqa: BLE001 - fail-open
        report("control.check_current_run", exc)
        return
    check_run(run_id)


@dataclass(frozen=True, slots=True)
class _OpenSet:
    """The open set of one document, valid for ``now`` in ``[since, until)``."""

    document: ControlDocument
    since: float
    until: float
    models: frozenset[str]


_open_cache: _OpenSet | None = None


def _open_at(document: ControlDocument, now: float) -> frozenset[str]:
    # Cached until the next cool-down ends: this runs before every routed provider call.
    global _open_cache
    cached = _open_cache
    if cached is not None and cached.document is document and cached.since <= now < cached.until:
        return cached.models
    models = document.open_breakers(now)
    ends = [document.breakers[m].until for m in models]
    _open_cache = _OpenSet(document, now, min(ends, default=math.inf), models)
    return models


def open_breakers(now: float | None = None) -> frozenset[str]:
    """Return the models whose circuit breaker is open at ``now`` (never raises).

    A breaker past its ``until`` is half-open: its model may be tried again and is not listed.

    Args:
        now: The time, in seconds since the epoch; the current time by default.

    Returns:
        The model names to avoid.
    """
    try:
        document = current()
        if not document.breakers:
            return _NONE
        return _open_at(document, time.time() if now is None else now)
    except Exception as exc:  # noqa: BLE001 - fail-open
        report("control.open_breakers", exc)
        return _NONE
