"""Duplicate-span probe: AgentMesh and one peer instrumented in the same process.

Run inside a venv holding both (``python -m _overhead.coexist PEER``); prints one JSON line per
scenario with the spans one plain and one streamed call produced, as ``scope:name``:

- ``ours_then_peer`` / ``peer_then_ours``: both instrumented, in that order (the last one
  applied wraps the other);
- ``peer_with_suppress_key``: the peer alone, the call made under OpenTelemetry's
  ``_SUPPRESS_INSTRUMENTATION_KEY`` (what an outer AgentMesh wrapper would set);
- ``peer_with_llm_suppress_key``: the same with ``suppress_language_model_instrumentation``;
- ``peer_with_genai_inference_context``: the same with the official GenAI utilities' inference
  context (``CLIENT_INFERENCE_CONTEXT_KEY`` holding an ``InferenceData``), when installed.

Each scenario runs in a fresh process, since instrumentations patch the SDK process-wide.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from typing import Any

from _overhead import worker

SCENARIOS = (
    "ours_then_peer",
    "peer_then_ours",
    "peer_with_suppress_key",
    "peer_with_llm_suppress_key",
    "peer_with_genai_inference_context",
)


def _context_for(scenario: str) -> Any:
    from opentelemetry import context

    if scenario == "peer_with_suppress_key":
        return context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True)  # pyright: ignore[reportPrivateUsage]
    if scenario == "peer_with_llm_suppress_key":
        return context.set_value("suppress_language_model_instrumentation", True)
    if scenario == "peer_with_genai_inference_context":
        genai: Any = importlib.import_module("opentelemetry.util.genai.invocation")
        return context.set_value(genai.CLIENT_INFERENCE_CONTEXT_KEY, genai.InferenceData())
    return None


def run(peer: str, scenario: str) -> dict[str, object]:
    """Run one scenario in this process and describe the spans.

    Args:
        peer: The peer's name.
        scenario: One of :data:`SCENARIOS`.

    Returns:
        The scenario, and per mode the spans as ``scope:name (child of …)``.
    """
    from opentelemetry import context

    session = worker.Session(peer, instrumented=False)
    provider = session.tracer_provider
    order = {
        "ours_then_peer": ("agentmesh", peer),
        "peer_then_ours": (peer, "agentmesh"),
    }.get(scenario, (peer,))
    for name in order:
        worker.instrument(name, provider)
    result: dict[str, object] = {"peer": peer, "scenario": scenario}
    try:
        ctx = _context_for(scenario)
    except ImportError as exc:
        return {**result, "skipped": str(exc)}
    token = context.attach(ctx) if ctx is not None else None
    try:
        for mode, call in (("plain", session.plain_call), ("stream", session.stream_call)):
            session.exporter.clear()
            call()
            spans = session.exporter.get_finished_spans()
            names = {s.context.span_id: s.name for s in spans if s.context is not None}
            result[mode] = [
                f"{span.instrumentation_scope.name if span.instrumentation_scope else '?'}:"
                f"{span.name}"
                + (
                    f" (child of {names.get(span.parent.span_id, 'the caller')})"
                    if span.parent is not None
                    else ""
                )
                for span in spans
            ]
    finally:
        if token is not None:
            context.detach(token)
    return result


def main() -> None:
    if len(sys.argv) == 3:  # one scenario, in this process
        print(json.dumps(run(sys.argv[1], sys.argv[2])))
        return
    for scenario in SCENARIOS:  # every scenario, each in a fresh process
        done = subprocess.run(
            [sys.executable, "-m", "_overhead.coexist", sys.argv[1], scenario],
            capture_output=True,
            text=True,
            check=False,
        )
        lines = done.stdout.strip().splitlines()
        print(
            lines[-1] if lines else json.dumps({"scenario": scenario, "error": done.stderr[-800:]})
        )


if __name__ == "__main__":
    main()
