"""Model calls as the cross-run detectors count them: failed fallback attempts included.

A call the router retried on another model (``agentmesh.route.fallback``) is one span that ends
well, on the fallback model; the models it fell back from failed all the same, and an outage or
a rate-limit storm shows first in those attempts. :func:`model_calls` yields, for a chat span,
one failed call per attempt (same span, the failed model, ``error.type`` of the attempt) before
the span itself.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentmesh.collector.graph.node import GraphNode

__all__ = ["called_model", "model_calls", "model_label"]


def called_model(node: GraphNode) -> str | None:
    """The model a call is counted against: the one it asked for (the router's name for it).

    Args:
        node: A ``chat`` span.

    Returns:
        ``gen_ai.request.model``, else the model that answered.
    """
    return node.request_model or node.model


def model_calls(node: GraphNode) -> Iterator[GraphNode]:
    """Yield the calls one chat span stands for: its failed attempts, then itself.

    Args:
        node: A ``chat`` span.

    Yields:
        A failed call per fallback attempt (``span_id`` suffixed ``#n``; it ended when the
        span started the next attempt, approximated by the span's start), then ``node``
        counted against the model of the last attempt (the one that answered).
    """
    last_target: str | None = None
    for index, (model, error_type, target) in enumerate(node.failed_attempts):
        last_target = target
        yield node._replace(
            span_id=f"{node.span_id}#{index}",
            end_ns=node.start_ns,
            model=model,
            request_model=model,
            error=True,
            error_type=error_type,
            http_status=None,
            failed_attempts=(),
        )
    if last_target is None:
        yield node
    else:  # counted against the model of the last attempt, the one that answered
        yield node._replace(request_model=last_target, failed_attempts=())


def model_label(provider: str, model: str) -> str:
    """Name a provider's model for a message: ``openai/gpt-4o``, ``openai/unknown model``.

    Args:
        provider: The provider, or ``""`` when unknown.
        model: The model, or ``""`` when unknown.

    Returns:
        The label.
    """
    if provider:
        return f"{provider}/{model or 'unknown model'}"
    return model or "unknown model"
