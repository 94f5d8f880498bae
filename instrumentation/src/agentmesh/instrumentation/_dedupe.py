"""One span per model call when a peer instrumentation wraps the same SDK method.

OpenLLMetry, OpenInference, OpenLIT and the official OpenTelemetry GenAI instrumentation patch
the same ``openai`` (and ``anthropic``) methods as we do. The rule (documented in
``docs/instrumentation.md``, "One span per call"):

- **We are the outer wrapper** (the usual case: our provider patches always wrap, even over a
  peer's): the context we attach around the SDK call carries OpenTelemetry's general
  suppression key, ``suppress_language_model_instrumentation`` and, when the official GenAI
  utilities are loaded, an ``InferenceData`` under their client-inference key. OpenLLMetry,
  OpenInference and the official instrumentation then skip their span.
- **A peer is the outer wrapper** (it patched over ours): the current span is a recording span
  of a known peer scope. We start no span: our ``agentmesh.*`` attributes go on theirs.
- **A suppression key is already set** when our wrapper runs: someone above asked for no
  instrumentation; the call passes through untouched.

Everything here is cheap: a few dictionary look-ups per call.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY  # pyright: ignore[reportPrivateUsage]
from opentelemetry.trace import Span

from agentmesh.core.log import get_logger

__all__ = [
    "LLM_SUPPRESS_KEY",
    "PEER_SCOPES",
    "SUPPRESS_KEY",
    "peer_span",
    "suppressed",
    "suppression_values",
]

_log = get_logger(__name__)

SUPPRESS_KEY: str = _SUPPRESS_INSTRUMENTATION_KEY
"""OpenTelemetry's general "do not instrument this" context key."""

LLM_SUPPRESS_KEY = "suppress_language_model_instrumentation"
"""The context key OpenLLMetry honours to skip its model-call spans."""

PEER_SCOPES: frozenset[str] = frozenset(
    {
        "opentelemetry.instrumentation.openai.v1",  # OpenLLMetry
        "opentelemetry.instrumentation.openai",
        "opentelemetry.instrumentation.anthropic",
        "openinference.instrumentation.openai",  # OpenInference
        "openinference.instrumentation.anthropic",
        "opentelemetry.instrumentation.genai.openai",  # official GenAI instrumentation
        "opentelemetry.util.genai.handler",
        "openlit.instrumentation.openai",  # OpenLIT
        "openlit.otel.tracing",
        "openlit",
    }
)
"""Instrumentation scopes of the peers' model-call spans."""

_GENAI_INVOCATION = "opentelemetry.util.genai.invocation"
_SUPPRESSING: Mapping[str, object] = {SUPPRESS_KEY: True, LLM_SUPPRESS_KEY: True}


def suppressed(context: Mapping[str, object]) -> bool:
    """Whether the context asks instrumentations to record nothing.

    Args:
        context: The current OpenTelemetry context.

    Returns:
        True when the general or the language-model suppression key is set.
    """
    return bool(context.get(SUPPRESS_KEY) or context.get(LLM_SUPPRESS_KEY))


def peer_span(span: Span) -> bool:
    """Whether ``span`` is a recording model-call span started by a peer instrumentation.

    Args:
        span: The current span.

    Returns:
        True for a recording span of one of :data:`PEER_SCOPES`.
    """
    scope: object = getattr(span, "instrumentation_scope", None)
    if scope is None:
        return False
    name: object = getattr(scope, "name", None)
    return name in PEER_SCOPES and span.is_recording()


def suppression_values() -> Mapping[str, object]:
    """The context values our wrapper puts around the SDK call so inner peers skip their span.

    The official instrumentation's ``InferenceData`` is added only when its utilities are
    already imported (we never import them).

    Returns:
        Context key to value (read-only: shared between calls).
    """
    invocation = sys.modules.get(_GENAI_INVOCATION)
    if invocation is None:
        return _SUPPRESSING
    values = dict(_SUPPRESSING)
    try:
        key: object = getattr(invocation, "CLIENT_INFERENCE_CONTEXT_KEY")  # noqa: B009
        data: object = getattr(invocation, "InferenceData")()  # noqa: B009
        if isinstance(key, str):
            values[key] = data
    except Exception as exc:  # noqa: BLE001 - an unknown version: skip that key
        _log.debug("agentmesh.genai_inference_key_unavailable", error=str(exc))
    return values
