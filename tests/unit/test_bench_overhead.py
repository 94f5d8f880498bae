"""Smoke test of ``bench/instrumentation_overhead.py``'s harness, with AgentMesh only.

No venv is created and no peer is installed: the workers run on this environment's
interpreter (whatever ``openai`` it has), a couple of rounds of a few calls. Timings are not
asserted, only that the harness measures what it claims: one span per call, paired rounds, and
the JSON shape of the issue.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import openai

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from _overhead import canned, peers, runner, stats, venvs  # noqa: E402


def _samples(plain: tuple[float, float], stream: tuple[float, float], spans: float = 1.0):
    samples = stats.Samples(version="1.0")
    for mode, (bare, inst) in (("plain", plain), ("stream", stream)):
        for offset in (0.0, 2.0, 4.0):  # three rounds, the same overhead each time
            samples.bare_us[mode].append(bare + offset)
            samples.instrumented_us[mode].append(inst + offset)
            samples.spans_per_call[mode].append(spans)
    return samples


def test_canned_answers_parse_as_the_sdk_types() -> None:
    completion = openai.types.chat.ChatCompletion.model_validate_json(canned.completion_body())
    assert completion.usage is not None
    assert completion.usage.total_tokens == 29
    events = [
        line.removeprefix("data: ")
        for line in canned.stream_body().decode().split("\n\n")
        if line.startswith("data: ")
    ]
    assert events[-1] == "[DONE]"
    chunks = [openai.types.chat.ChatCompletionChunk.model_validate_json(e) for e in events[:-1]]
    assert chunks[-1].usage is not None
    assert chunks[-1].choices == []
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "The capital is Paris."
    )


def test_summary_has_the_issue_shape_and_ratio() -> None:
    results = {
        "agentmesh": _samples(plain=(500, 550), stream=(900, 970)),  # +50, +70 -> 60
        "otel_genai": _samples(plain=(500, 600), stream=(900, 1040)),  # +100, +140 -> 120
        "openlit": _samples(plain=(500, 700), stream=(900, 1100)),  # +200, +200 -> 200
    }
    summary = stats.summary(results)
    assert summary["overhead_us"] == {"agentmesh": 60.0, "otel_genai": 120.0, "openlit": 200.0}
    assert summary["ratio_vs_best_peer"] == 0.5
    assert summary["best_peer"] == "otel_genai"
    assert summary["ratio_vs_best_peer_plain"] == 0.5
    assert summary["ratio_vs_best_peer_stream"] == 0.5
    assert summary["goal_met"] is True
    assert summary["spread_us"]["agentmesh"] == {"plain": [50.0, 50.0], "stream": [70.0, 70.0]}
    json.dumps(summary)  # the last line must serialise


def test_a_contender_with_two_spans_per_call_is_flagged() -> None:
    results = {"agentmesh": _samples((500, 550), (900, 970)), "x": _samples((1, 2), (1, 2), 2.0)}
    warnings = stats.not_one_span(results)
    assert len(warnings) == 2
    assert all(w.startswith("x (") for w in warnings)


def test_venv_cache_key_depends_on_the_contender() -> None:
    keys = {venvs.cache_key(peer) for peer in peers.PEERS}
    assert len(keys) == len(peers.PEERS)
    assert venvs.cache_key(peers.AGENTMESH) == venvs.cache_key(peers.AGENTMESH)


def test_harness_measures_agentmesh_with_one_span_per_call() -> None:
    plan = runner.Plan(rounds=2, calls=4, warmup=1)
    results = runner.measure({"agentmesh": sys.executable}, plan)
    samples = results["agentmesh"]
    assert samples.version == metadata.version("agentmesh-instrumentation")
    for mode in stats.MODES:
        assert len(samples.bare_us[mode]) == len(samples.instrumented_us[mode]) == 2
        assert all(value > 0 for value in samples.bare_us[mode])
        assert samples.spans_per_call[mode] == [1.0, 1.0]
    assert samples.span_names == {f"chat {canned.MODEL}"}
    summary = stats.summary(results)
    assert set(summary["overhead_us"]) == {"agentmesh"}
    assert summary["ratio_vs_best_peer"] is None
    assert stats.not_one_span(results) == []
    assert stats.table(results, {"agentmesh": "AgentMesh"})[-1].startswith("AgentMesh")
