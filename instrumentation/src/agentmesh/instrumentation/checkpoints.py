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

Example:
    >>> from opentelemetry.trace import INVALID_SPAN
    >>> reset_handoff_writer()
    True
    >>> checkpoint_handoff(
    ...     INVALID_SPAN, "run-1", {"q": 1}, source="a", target="b", digest="sha256:…"
    ... )
    {}
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from opentelemetry.trace import Span, format_span_id, format_trace_id
from opentelemetry.util.types import AttributeValue

from agentmesh.core.log import get_logger
from agentmesh.core.semconv import (
    AGENTMESH_HANDOFF_CHECKPOINT_ID,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE,
    AGENTMESH_HANDOFF_CHECKPOINT_STORE_URL,
)

if TYPE_CHECKING:
    from agentmesh.checkpoint.handoff_writer import HandoffCheckpointWriter

__all__ = ["checkpoint_handoff", "handoff_writer", "reset_handoff_writer"]

_log = get_logger(__name__)

_lock = threading.Lock()
_writer: HandoffCheckpointWriter | None = None
_resolved = False


def _build() -> HandoffCheckpointWriter | None:
    from agentmesh.instrumentation.settings import InstrumentationSettings

    settings = InstrumentationSettings.load()
    url, queue_size = settings.checkpoint_url, settings.checkpoint_queue_size
    if url is None:
        return None
    try:
        from agentmesh.checkpoint.handoff_writer import HandoffCheckpointWriter
    except ImportError as exc:
        _log.warning(
            "handoff_checkpoints_disabled",
            reason="agentmesh-checkpoint is not installed; install "
            "agentmesh-instrumentation[checkpoints] to store handoff checkpoints",
            error=str(exc),
        )
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
