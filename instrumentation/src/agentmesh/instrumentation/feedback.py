"""Scores from the app on the calls it routed: :func:`last_route` and :func:`send_feedback`.

The router learns from each call's outcome; a score the app gives (a user's thumbs up, a test
passing, a grader's verdict) is the strongest outcome there is. After a routed call,
:func:`last_route` names it (decision id, trace and span) in the context that made it (the
thread, or the asyncio task), and :func:`send_feedback` posts a score for it to the collector's
``POST /v1/feedback`` from a background thread::

    reply = client.chat.completions.create(model="gpt-4o", messages=messages)
    send_feedback(1.0 if accepted(reply) else 0.0, comment="user accepted the answer")

Fail-open: sending never blocks the app and never raises for a collector that is away; a score
that cannot be delivered (after three tries, ``Retry-After`` honoured) is logged and dropped.
Scores wait in a bounded queue (1,000); beyond it the oldest is dropped and logged. The
collector is the one the control document and the route table come from
(``AGENTMESH_CONTROL_URL``, else derived from the OTLP endpoint), with the exporter's headers.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, cast

from opentelemetry.trace import Span

from agentmesh.core.errors import ConfigError
from agentmesh.core.log import get_logger
from agentmesh.core.tls import client_ssl_context

__all__ = ["RouteRef", "last_route", "remember_route", "send_feedback"]

_log = get_logger(__name__)

FEEDBACK_PATH: Final = "/v1/feedback"
_MAX_QUEUED: Final = 1000
_TRIES: Final = 3
_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class RouteRef:
    """A routed call, as feedback names it.

    Attributes:
        decision_id: The routing decision's id.
        trace_id: The call span's trace (32 hex digits).
        span_id: The call's span (16 hex digits).
        model: The model the decision chose.
    """

    decision_id: str
    trace_id: str
    span_id: str
    model: str | None = None


_LAST: ContextVar[RouteRef | None] = ContextVar("agentmesh_last_route", default=None)


def remember_route(span: Span, decision_id: str, model: str | None) -> None:
    """Remember a routed call in the current context (the routing hook calls this).

    Args:
        span: The call's span.
        decision_id: Its decision's id.
        model: The model chosen.
    """
    context = span.get_span_context()
    if context.is_valid:
        _LAST.set(
            RouteRef(decision_id, f"{context.trace_id:032x}", f"{context.span_id:016x}", model)
        )


def last_route() -> RouteRef | None:
    """Return the latest routed call made in this context (thread or asyncio task).

    Returns:
        The call, or ``None`` when no call was routed here (routing off, or none yet).
    """
    return _LAST.get()


def send_feedback(
    score: float, *, comment: str | None = None, route: RouteRef | None = None
) -> bool:
    """Queue a score for a routed call; a background thread posts it to the collector.

    Args:
        score: The call's quality, from 0 (useless) to 1 (perfect).
        comment: Why, in a few words (kept with the score).
        route: The call; by default :func:`last_route`.

    Returns:
        Whether the score was queued (``False``: no routed call to score, or no collector to
        send it to; the reason is logged).

    Raises:
        ConfigError: ``score`` is not a number from 0 to 1.
    """
    number = cast("object", score)  # a caller may pass anything
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 1:
        raise ConfigError(f"a feedback score is a number from 0 to 1, not {score!r}")
    target = route if route is not None else _LAST.get()
    if target is None:
        _log.warning("feedback not sent: no routed call in this context to score")
        return False
    body: dict[str, object] = {
        "trace_id": target.trace_id,
        "span_id": target.span_id,
        "decision_id": target.decision_id,
        "score": float(score),
    }
    if comment:
        body["comment"] = comment
    return _SENDER.put(body)


class _Sender:
    """One daemon thread posting queued scores, started on first use."""

    def __init__(self) -> None:
        self._queue: queue.Queue[dict[str, object]] = queue.Queue(_MAX_QUEUED)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, body: dict[str, object]) -> bool:
        base = _collector_base()
        if base is None:
            return False
        while True:
            try:
                self._queue.put_nowait({"__url__": base + FEEDBACK_PATH, **body})
                break
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                _log.warning("feedback dropped: the queue is full", dropped=dropped)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="agentmesh-feedback", daemon=True
                )
                self._thread.start()
        return True

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            url = str(item.pop("__url__"))
            try:
                _post(url, item)
            except Exception as exc:  # noqa: BLE001 - fail-open: logged, the next one is sent
                _log.warning(
                    "feedback not delivered",
                    url=url,
                    decision_id=item.get("decision_id"),
                    reason=str(exc),
                )


def _post(url: str, body: dict[str, object]) -> None:
    from agentmesh.instrumentation.control._runtime import otlp_headers

    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **otlp_headers()}
    context = client_ssl_context() if url.startswith("https://") else None
    for attempt in range(_TRIES):
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(request, timeout=_TIMEOUT_S, context=context) as answer:  # noqa: S310
                answer.read()
                return
        except urllib.error.HTTPError as exc:
            if exc.code not in (429, 502, 503, 504) or attempt == _TRIES - 1:
                raise ConfigError(f"the collector answered {exc.code}: {_reason(exc)}") from exc
            time.sleep(_retry_after(exc, attempt))
        except OSError:
            if attempt == _TRIES - 1:
                raise
            time.sleep(0.5 * 2**attempt)


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        found: object = json.loads(exc.read())
    except (OSError, ValueError):
        return str(exc.reason)
    if isinstance(found, dict):
        error = found.get("error")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        if isinstance(error, str):
            return error
    return str(exc.reason)


def _retry_after(exc: urllib.error.HTTPError, attempt: int) -> float:
    value = exc.headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), 30.0) if value is not None else 0.5 * 2**attempt
    except ValueError:
        return 0.5 * 2**attempt


def _collector_base() -> str | None:
    from agentmesh.instrumentation.control import control_target
    from agentmesh.instrumentation.settings import InstrumentationSettings

    try:
        settings = InstrumentationSettings.load()
        base = control_target(settings.model_copy(update={"control_enabled": True}))
    except Exception as exc:  # noqa: BLE001 - fail-open: logged, the score is not queued
        _log.warning("feedback not sent: the collector's address is unknown", reason=str(exc))
        return None
    if base is None:
        _log.warning("feedback not sent: AgentMesh is disabled (AGENTMESH_DISABLED)")
    return base


_SENDER: Final = _Sender()
