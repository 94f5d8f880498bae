"""Fail-open helpers: our mistakes never reach the application, its errors reach it untouched.

Wrappers run two kinds of code: ours (building spans, reading responses) and the application's
(the wrapped call). Ours runs under :func:`guarded` or :func:`safe_call`, which log and swallow
any exception; the application's call is never put inside them. When the application's call
raises, :func:`record_error` marks the span and the wrapper re-raises with a bare ``raise``.

Only an :class:`Exception` is a failure. A :class:`BaseException` that is not one
(:class:`KeyboardInterrupt`, :class:`SystemExit`, :class:`asyncio.CancelledError`,
:class:`GeneratorExit`) stops the operation without it failing: a user pressing Ctrl-C, a task
cancelled (a client gone, a sibling branch that failed, a stream the caller stopped reading),
``sys.exit(0)``. Such a span ends with status ``UNSET`` and no ``error.type``, so the run it
ends is not ``failed`` (nor is a branch cancelled because its sibling failed named as the failed
step); the exception is recorded as an event, so the trace still tells why the span ended early,
the collector lists the run as ``interrupted``, and ``agentmesh resume`` still continues it.
(OpenTelemetry's own ``use_span`` has gone back and forth on this: opentelemetry-python#4406
made any ``BaseException`` an error, #4484 and #4494 report and revert it for ``GeneratorExit``
and other non-errors.)

Example:
    >>> from structlog.testing import capture_logs
    >>> def broken() -> int:
    ...     raise RuntimeError("bug in our code")
    >>> with capture_logs() as logs:
    ...     result = safe_call("demo", broken)
    >>> result is None, logs[0]["where"], logs[0]["error"]
    (True, 'demo', 'bug in our code')
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from contextlib import contextmanager, suppress
from typing import ParamSpec, TypeVar

from opentelemetry.trace import Span, Status, StatusCode

from agentmesh.core.log import get_logger
from agentmesh.core.semconv import ERROR_TYPE, HTTP_RESPONSE_STATUS_CODE

__all__ = ["end_span", "guarded", "is_failure", "record_error", "report", "safe_call"]

_log = get_logger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _report(where: str, exc: BaseException) -> None:
    with suppress(Exception):  # logging must never raise into the app either
        _log.warning(
            "agentmesh.instrumentation_error",
            where=where,
            error_type=type(exc).__name__,
            error=str(exc),
        )


def report(where: str, exc: BaseException) -> None:
    """Log an exception our own code raised (for hot paths that catch inline; never raises).

    Args:
        where: What the failing code did, for the log.
        exc: The exception.
    """
    _report(where, exc)


@contextmanager
def guarded(where: str) -> Generator[None]:
    """Run a block of instrumentation code; log and swallow whatever it raises.

    Never put the application's own call inside this block: its exceptions would be lost.

    Args:
        where: What the block does, for the log.

    Yields:
        Nothing.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - fail-open by design
        _report(where, exc)


def safe_call(where: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R | None:
    """Call instrumentation code; on any exception log it and return ``None``.

    Args:
        where: What the call does, for the log.
        fn: The function.
        *args: Its positional arguments.
        **kwargs: Its keyword arguments.

    Returns:
        What ``fn`` returned, or ``None`` when it raised.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - fail-open by design
        _report(where, exc)
        return None


def is_failure(exc: BaseException) -> bool:
    """Tell whether an exception that ended an operation means the operation failed.

    Args:
        exc: The exception.

    Returns:
        ``True`` for an :class:`Exception`; ``False`` for an interruption (Ctrl-C,
        ``SystemExit``, a cancelled task, a closed generator).

    Example:
        >>> import asyncio
        >>> is_failure(ValueError()), is_failure(asyncio.CancelledError())
        (True, False)
    """
    return isinstance(exc, Exception)


def record_error(span: Span, exc: BaseException) -> None:
    """Mark a span as failed by an application exception (never raises).

    Records the exception as an event, sets status ``ERROR`` and ``error.type`` to the
    exception's class name, and ``http.response.status_code`` when the exception carries the
    HTTP status (the provider SDKs' status errors do: 429 tells a rate limit from an outage).
    An interruption (see :func:`is_failure`) is no failure: it is only recorded as an event
    (none for ``GeneratorExit``, a generator closed early), the status left ``UNSET``.
    The caller re-raises the exception itself.

    Args:
        span: The span of the failed operation.
        exc: The application's exception.
    """
    with guarded("record_error"):
        if isinstance(exc, GeneratorExit):
            return
        span.record_exception(exc)
        if not is_failure(exc):
            return
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.set_attribute(ERROR_TYPE, type(exc).__name__)
        status: object = getattr(exc, "status_code", None)  # the SDKs' APIStatusError
        if type(status) is int:
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)


def end_span(span: Span) -> None:
    """End a span (never raises).

    Args:
        span: The span.
    """
    with guarded("end_span"):
        span.end()
