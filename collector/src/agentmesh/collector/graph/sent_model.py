"""The model a routed call was sent to last: the one its outcome belongs to.

The instrumentation names the model it sent in ``gen_ai.request.model`` (after enforce replaced
the app's model, and after each fallback); the app's own model stays in
``agentmesh.route.requested_model``. Spans recorded before it did kept the app's model in
``gen_ai.request.model``, so the route's choice (when enforced) and the last fallback's target
(``agentmesh.route.fallback`` events) are read first: they name the sent model in both cases.
"""

from __future__ import annotations

__all__ = ["sent_model"]


def sent_model(
    request_model: str | None, enforced_choice: str | None, last_fallback_target: str | None
) -> str | None:
    """Name the model a routed call was sent to last (the one that answered, or failed last).

    Args:
        request_model: ``gen_ai.request.model``.
        enforced_choice: ``agentmesh.route.chosen`` when the route was enforced, else ``None``.
        last_fallback_target: ``agentmesh.route.fallback.to`` of the call's last fallback
            event, if it fell back.

    Returns:
        The last fallback's target, else the enforced choice, else the request model.

    Example:
        >>> sent_model("gpt-4o-mini", "gpt-4o", "gpt-4o-mini")
        'gpt-4o-mini'
        >>> sent_model("gpt-4o", "gpt-4o-mini", None)  # a span that kept the app's model
        'gpt-4o-mini'
        >>> sent_model("gpt-4o", None, None)  # shadow mode: the app's model was sent
        'gpt-4o'
    """
    return last_fallback_target or enforced_choice or request_model
