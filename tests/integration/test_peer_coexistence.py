"""One span per call with a peer OpenAI instrumentation installed next to AgentMesh.

For each peer (OpenLLMetry, OpenInference, the official GenAI instrumentation) a throwaway venv
holding the peer and AgentMesh (editable, so it runs this checkout) is made once and cached by
the overhead benchmark's machinery (``bench/_overhead/venvs.py``). In it, one subprocess applies
both instrumentations in each order (ours then the peer, the peer then ours) and makes a plain
and a streamed ``chat.completions.create`` on an in-process transport; a second one runs the
same calls through ``opentelemetry-instrument`` with the AgentMesh distro, which must skip the
peer's ``openai`` entry point. Every call must produce exactly one ``chat`` span, carrying our
``agentmesh.*`` attributes (the cost) whoever started it.

Making a venv needs ``uv`` and PyPI; when either is missing the test fails with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentmesh.core.semconv import AGENTMESH_COST_USD

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _overhead import peers, venvs  # noqa: E402 - bench/ is not a package of the workspace

PEERS = ("openllmetry", "openinference", "otel_genai")

# Runs inside the peer's venv, with bench/ as the working directory (for _overhead.worker).
PROBE = textwrap.dedent(
    """
    import importlib, json, sys
    from opentelemetry import trace
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from _overhead import worker

    peer, zero_code = sys.argv[1], sys.argv[2] == "zero-code"

    def describe(session):
        out = {}
        for mode, call in (("plain", session.plain_call), ("stream", session.stream_call)):
            session.exporter.clear()
            call()
            out[mode] = [
                {
                    "scope": span.instrumentation_scope.name,
                    "name": span.name,
                    "own": sorted(k for k in span.attributes if k.startswith("agentmesh.")),
                }
                for span in session.exporter.get_finished_spans()
            ]
        return out

    def uninstrument(name):
        if name == "agentmesh":
            from agentmesh.instrumentation.openai import OpenAIInstrumentor
            OpenAIInstrumentor().uninstrument()
            return
        module, _, cls = worker._INSTRUMENTORS[name].partition(":")
        getattr(importlib.import_module(module), cls)().uninstrument()

    result = {}
    session = worker.Session(peer, instrumented=False)
    if zero_code:
        trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(session.exporter))
        result["zero_code"] = describe(session)
    else:
        for scenario, order in (
            ("ours_then_peer", ("agentmesh", peer)),
            ("peer_then_ours", (peer, "agentmesh")),
        ):
            for name in order:
                worker.instrument(name, session.tracer_provider)
            result[scenario] = describe(session)
            for name in reversed(order):
                uninstrument(name)
    print(json.dumps(result))
    """
)


def _venv(peer: str) -> Path:
    try:
        venv = venvs.ensure(peers.with_agentmesh(peers.BY_NAME[peer]), venvs.default_cache_dir())
    except RuntimeError as exc:
        pytest.fail(f"cannot make the {peer} + AgentMesh venv (uv and PyPI are needed): {exc}")
    return venv.python


def _probe(python: Path, peer: str, mode: str) -> dict[str, dict[str, list[dict[str, object]]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    env.pop("VIRTUAL_ENV", None)
    command = [str(python), "-c", PROBE, peer, mode]
    if mode == "zero-code":
        env.update(
            OTEL_PYTHON_DISTRO="agentmesh",
            OTEL_PYTHON_CONFIGURATOR="agentmesh",
            AGENTMESH_ENDPOINT="http://127.0.0.1:9",  # nothing listens: spans are read in-process
        )
        command = [str(python.parent / "opentelemetry-instrument"), *command]
    done = subprocess.run(
        command, cwd=BENCH, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    lines = done.stdout.strip().splitlines()
    failure = f"probe failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, failure
    assert lines, failure
    return json.loads(lines[-1])


@pytest.fixture(scope="module", params=PEERS)
def probed(request: pytest.FixtureRequest) -> tuple[str, dict[str, object]]:
    peer: str = request.param
    python = _venv(peer)
    results: dict[str, object] = {}
    results.update(_probe(python, peer, "orders"))
    results.update(_probe(python, peer, "zero-code"))
    return peer, results


@pytest.mark.parametrize("scenario", ["ours_then_peer", "peer_then_ours", "zero_code"])
@pytest.mark.parametrize("mode", ["plain", "stream"])
def test_one_chat_span_per_call_with_our_attributes(
    probed: tuple[str, dict[str, dict[str, list[dict[str, object]]]]], scenario: str, mode: str
) -> None:
    peer, results = probed
    spans = results[scenario][mode]
    chat = [s for s in spans if "chat" in str(s["name"]) or "Chat" in str(s["name"])]
    assert len(chat) == 1, f"{peer} {scenario} {mode}: {spans}"
    assert len(spans) == 1, f"{peer} {scenario} {mode}: spans besides the chat span: {spans}"
    own = chat[0]["own"]
    assert isinstance(own, list)
    assert AGENTMESH_COST_USD in own, f"{peer} {scenario} {mode}: {chat[0]}"


def test_zero_code_keeps_our_span_and_skips_the_peer(
    probed: tuple[str, dict[str, dict[str, list[dict[str, object]]]]],
) -> None:
    peer, results = probed
    for mode in ("plain", "stream"):
        scopes = [s["scope"] for s in results["zero_code"][mode]]
        assert scopes == ["agentmesh.instrumentation.openai"], f"{peer} {mode}: {scopes}"
