"""Handoff checkpoints: the context of each handoff stored where ``AGENTMESH_CHECKPOINT_URL`` says.

When the setting names a store (``duckdb:///…``, ``redis://…``, ``postgresql://…``,
``memory://``), the framework adapters hand the context that crossed each handoff to one
process-wide :class:`~agentmesh.checkpoint.handoff_writer.HandoffCheckpointWriter`, built on the
first handoff, and put the checkpoint id it returns (with the store kind and the store's URL,
password masked) on the handoff span and event. The write happens on the writer's thread: the
application never waits and never sees an error from it.

``agentmesh-checkpoint`` is an optional extra (``agentmesh-instrumentation[checkpoints]``): it is
imported only when a URL is set; when it is missing, one warning is logged and handoff
checkpoints stay off. Without a URL nothing is imported and :func:`checkpoint_handoff` returns
nothing.

The URL is checked at start (:func:`check_checkpoint_url`, which ``init()`` and the zero-code
configurator call): a URL no store could use (another scheme, a Redis database or a port that
is not a number, a DSN asyncpg cannot use) is logged once as ``agentmesh.invalid_configuration``
naming ``AGENTMESH_CHECKPOINT_URL``, and handoff checkpoints are off; the application stays
instrumented (fail-open).

Example:
    >>> from opentelemetry.trace import INVALID_SPAN
    >>> reset_handoff_writer()
    True
    >>> checkpoint_handoff(
    ...     INVALID_SPAN, "run-1", {"q": 1}, source="a", target="b", digest="sha256:…"
    ... )
    {}
    >>> checkpoint_url_problem("redis://cache:6379/abc")
    'the database must be a number, like redis://host:6379/0'
"""

from __future__ import annotations

import importlib.util
import os
import threading
from typing import TYPE_CHECKING, Final

from opentelemetry.trace import Span, format_span_id, format_trace_id
from opentelemetry.util.types import AttributeValue

from agentmesh.core.connection_urls import postgres_dsn_problem, redis_url_problem
from agentmesh.core.log import get_logger
from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CHECKPOINT_ID,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL,
)
from agentmesh.core.urls import masked_url

if TYPE_CHECKING:
    from agentmesh.checkpoint.handoff_writer import HandoffCheckpointWriter

__all__ = [
    "check_checkpoint_url",
    "checkpoint_handoff",
    "checkpoint_url_problem",
    "handoff_writer",
    "reset_handoff_writer",
]

_log = get_logger(__name__)

_URL_VAR: Final = "AGENTMESH_CHECKPOINT_URL"
_STORE_SCHEMES: Final = ("memory", "duckdb", "redis", "rediss", "postgresql", "postgres")
"""The schemes ``agentmesh.checkpoint.store.open_store`` takes."""
_NOT_INSTALLED: Final = (
    "agentmesh-checkpoint is not installed; install agentmesh-instrumentation[checkpoints] to "
    "store handoff checkpoints"
)

_lock = threading.Lock()
_writer: HandoffCheckpointWriter | None = None
_resolved = False


def checkpoint_url_problem(url: str) -> str | None:
    """Say why no checkpoint store could use ``url``, without opening it or importing a driver.

    The scheme must be one the stores take; a Redis URL and a PostgreSQL DSN are checked as
    the stores check them (:mod:`agentmesh.core.connection_urls`: a database or a port that is
    not a number, a DSN asyncpg cannot use); a DuckDB URL must name a file.

    Args:
        url: The store URL (``AGENTMESH_CHECKPOINT_URL``).

    Returns:
        The problem in words (the URL is not repeated: it may hold a password), or ``None``.

    Example:
        >>> checkpoint_url_problem("memory://"), checkpoint_url_problem("duckdb:///tmp/c.duckdb")
        (None, None)
        >>> checkpoint_url_problem("mysql://db/app")
        'expected memory://, duckdb:///path/file.duckdb, redis://host:6379/0 or postgresql://user@host/db (not mysql://)'
    """  # noqa: E501 - a doctest's expected output is one line
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _STORE_SCHEMES:
        named = f" (not {scheme}://)" if separator and scheme.isascii() and scheme.isalnum() else ""
        return (
            "expected memory://, duckdb:///path/file.duckdb, redis://host:6379/0 or "
            f"postgresql://user@host/db{named}"
        )
    if scheme == "duckdb" and not rest:
        return "a duckdb:// URL names the file, like duckdb:///path/file.duckdb"
    if scheme in ("redis", "rediss"):
        return redis_url_problem(url)
    if scheme in ("postgresql", "postgres"):
        return postgres_dsn_problem(url)
    return None


def check_checkpoint_url(url: str | None) -> bool:
    """Check the handoff checkpoint store URL at start; turn handoff checkpoints off if unusable.

    A URL no store could use (:func:`checkpoint_url_problem`) is logged once as
    ``agentmesh.invalid_configuration`` naming ``AGENTMESH_CHECKPOINT_URL`` (password masked),
    and a missing ``agentmesh-checkpoint`` as ``handoff_checkpoints_disabled``; either way
    handoff checkpoints are off (no writer is built at the first handoff) and the application
    stays instrumented. Nothing is opened or connected here.

    Args:
        url: ``AGENTMESH_CHECKPOINT_URL`` (``None``: no handoff checkpoints, nothing to check).

    Returns:
        Whether handoff checkpoints can be written there (``True`` when no URL is set).
    """
    global _resolved
    if url is None or not _unusable(url):
        return True
    with _lock:
        if _writer is None:  # (one built already was built from a URL that passed)
            _resolved = True  # off: the first handoff builds no writer
    return False


def _unusable(url: str) -> bool:
    """Log why handoff checkpoints cannot go to ``url`` (once per process); ``False``: they can."""
    from agentmesh.instrumentation.settings import report_invalid

    problem = checkpoint_url_problem(url)
    if problem is not None:
        report_invalid(
            f"invalid configuration: {_URL_VAR}={masked_url(url)!r}: {problem}",
            action="handoff checkpoints off; still instrumenting",
        )
        return True
    if importlib.util.find_spec("agentmesh.checkpoint") is None:
        _log.warning("handoff_checkpoints_disabled", reason=_NOT_INSTALLED)
        return True
    return False


def _build() -> HandoffCheckpointWriter | None:
    from agentmesh.instrumentation.settings import InstrumentationSettings

    settings = InstrumentationSettings.load()
    url, queue_size = settings.checkpoint_url, settings.checkpoint_queue_size
    if url is None or _unusable(url):  # logged once per process, by whichever check comes first
        return None
    try:
        from agentmesh.checkpoint.handoff_writer import HandoffCheckpointWriter
    except ImportError as exc:
        _log.warning("handoff_checkpoints_disabled", reason=_NOT_INSTALLED, error=str(exc))
        return None
    writer = HandoffCheckpointWriter(url, queue_size=queue_size)
    _log.info("handoff_checkpoints_enabled", store=writer.kind, queue_size=queue_size)
    return writer


def handoff_writer() -> HandoffCheckpointWriter | None:
    """Return the process-wide handoff checkpoint writer, built on first use.

    The settings are read once; later calls return the same answer until
    :func:`reset_handoff_writer`. Never raises: a failure to build it is logged and leaves
    handoff checkpoints off.

    Returns:
        The writer, or ``None`` when no checkpoint URL is set (or it cannot be used).
    """
    global _writer, _resolved
    if _resolved:
        return _writer
    with _lock:
        if not _resolved:
            try:
                _writer = _build()
            except Exception as exc:  # noqa: BLE001 - fail-open: checkpoints stay off
                _log.warning(
                    "handoff_checkpoints_disabled", error_type=type(exc).__name__, error=str(exc)
                )
                _writer = None
            _resolved = True
    return _writer


def reset_handoff_writer(*, timeout: float = 2.0) -> bool:
    """Close the current writer (flushing up to ``timeout``) and forget it.

    The settings are read again on the next handoff.

    Args:
        timeout: Longest wait for the writer to flush, in seconds.

    Returns:
        Whether the old writer (if any) flushed and stopped in time.
    """
    global _writer, _resolved
    with _lock:
        old, _writer, _resolved = _writer, None, False
    return old.close(timeout) if old is not None else True


def _forget_in_child() -> None:
    """A forked child has no writer thread: let it build its own writer."""
    global _writer, _resolved, _lock
    _lock = threading.Lock()
    _writer, _resolved = None, False


os.register_at_fork(after_in_child=_forget_in_child)


def checkpoint_handoff(
    span: Span,
    run_id: str,
    context: object,
    *,
    source: str,
    target: str,
    digest: str,
    handoff_kind: str | None = None,
) -> dict[str, AttributeValue]:
    """Store the context of a handoff as a checkpoint, when a store is configured.

    The checkpoint id, the store kind and the store's URL (password masked) are set on
    ``span`` and returned, for the handoff events. Never raises, never waits for the store.

    Args:
        span: The receiving agent's span (its trace and span ids go into the metadata).
        run_id: The run; the checkpoint's thread.
        context: The context that crossed (the value whose digest the span carries).
        source: The agent handing over.
        target: The agent receiving.
        digest: The context digest on the span.
        handoff_kind: How the work crossed.

    Returns:
        ``agentmesh.handoff.checkpoint.id``, ``.store`` and ``.store_url``, or nothing when no
        checkpoint was queued.
    """
    writer = handoff_writer()
    if writer is None:
        return {}
    span_context = span.get_span_context()
    checkpoint_id = writer.submit(
        run_id,
        context,
        source=source,
        target=target,
        digest=digest,
        trace_id=format_trace_id(span_context.trace_id),
        span_id=format_span_id(span_context.span_id),
        handoff_kind=handoff_kind,
    )
    if checkpoint_id is None:
        return {}
    attributes: dict[str, AttributeValue] = {
        AGENTMESH_HANDOFF_CHECKPOINT_ID: checkpoint_id,
        AGENTMESH_HANDOFF_CHECKPOINT_STORE: writer.kind,
        AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL: writer.location,
    }
    span.set_attributes(attributes)
    return attributes
