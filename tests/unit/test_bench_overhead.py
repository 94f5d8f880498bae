"""Smoke test of ``bench/instrumentation_overhead.py``'s harness, with AgentMesh only.

No venv is created and no peer is installed: the workers run on this environment's
interpreter (whatever ``openai`` it has), a couple of rounds of a few calls. Timings are not
asserted, only that the harness measures what it claims: one span per instrumented call and none
per bare one (switching the instrumentation off in-process works), paired blocks, and
the JSON shape of the issue.
"""

from __future__ import annotations

import json
import sys
import types
from importlib import metadata
from pathlib import Path

import openai
import pytest
import wrapt

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from _overhead import canned, peers, runner, stats, toggle, venvs  # noqa: E402


def _samples(plain: tuple[float, float], stream: tuple[float, float], spans: float = 1.0):
    samples = stats.Samples(version="1.0")
    for mode, (bare, inst) in (("plain", plain), ("stream", stream)):
        for offset in (0.0, 2.0, 4.0):  # three rounds, the same overhead each time
            samples.bare_us[mode].append(bare + offset)
            samples.instrumented_us[mode].append(inst + offset)
            samples.pairs_us[mode].append([(inst - 1, bare), (inst, bare), (inst + 1, bare)])
            samples.spans_per_call[mode].append(spans)
            samples.bare_spans_per_call[mode].append(0.0)
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


def test_overhead_is_relative_to_the_adjacent_bare_block_and_pools_every_pair() -> None:
    samples = _samples(plain=(500, 550), stream=(900, 970))
    # The machine ran at half speed during round 2: both blocks of each pair slowed alike.
    samples.pairs_us["plain"] = [
        [(540.0, 500.0), (541.0, 500.0), (800.0, 500.0)],
        [(1104.0, 1000.0), (1106.0, 1000.0), (1108.0, 1000.0)],
        [(545.0, 500.0), (546.0, 500.0)],
    ]
    got = stats.figure(samples, "plain", reference_us=500.0)
    # Relative samples: .08 .082 .6 | .104 .106 .108 | .09 .092 -> pooled median .098
    assert got.relative == pytest.approx(0.098)
    assert got.overhead_us == pytest.approx(49.0)
    assert (got.low_us, got.high_us) == (pytest.approx(41.0), pytest.approx(53.0))


def test_contenders_are_shown_at_one_reference_bare_call() -> None:
    fast = _samples(plain=(500, 550), stream=(900, 990))  # +10 % each
    slow = _samples(plain=(1000, 1200), stream=(1800, 2160))  # +20 %, measured when slow
    by_name = stats.figures({"agentmesh": fast, "peer": slow})
    assert stats.reference_bare_us({"agentmesh": fast, "peer": slow}, "plain") == 750.0
    assert by_name["agentmesh"]["plain"].overhead_us == pytest.approx(75.0)
    assert by_name["peer"]["plain"].overhead_us == pytest.approx(150.0)
    summary = stats.summary({"agentmesh": fast, "peer": slow})
    assert summary["ratio_vs_best_peer_plain"] == 0.5  # raw µs would say 50 / 200 = 0.25


def test_bare_calls_that_emit_spans_are_flagged() -> None:
    samples = _samples((500, 550), (900, 970))
    samples.bare_spans_per_call["stream"] = [0.0, 1.0, 0.0]
    samples.patched = ["m.C.create"]
    warnings = stats.not_one_span({"agentmesh": samples})
    assert len(warnings) == 1
    assert "bare calls emitted [0.0, 1.0]" in warnings[0]
    assert "m.C.create" in warnings[0]


@pytest.fixture
def demo_package():
    module = types.ModuleType("overheaddemo.api")

    class Client:
        def create(self) -> str:
            return "bare"

    Client.__module__ = module.__name__
    Client.__qualname__ = "Client"
    module.Client = Client  # type: ignore[attr-defined]
    module.helper = lambda: "helper"  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_toggle_finds_and_switches_exactly_what_was_patched(demo_package) -> None:
    before = toggle.snapshot(("overheaddemo",))
    wrapt.wrap_function_wrapper(
        demo_package.__name__, "Client.create", lambda wrapped, inst, args, kw: "wrapped"
    )
    late = types.ModuleType("overheaddemo.late")  # imported while instrumenting
    late.fresh = lambda: "fresh"  # type: ignore[attr-defined]
    late.patched = wrapt.FunctionWrapper(lambda: "orig", lambda w, i, a, k: "late-wrapped")  # type: ignore[attr-defined]
    sys.modules[late.__name__] = late
    try:
        switch = toggle.Toggle(before, toggle.snapshot(("overheaddemo",)))
        assert switch.labels() == ["overheaddemo.api.Client.create", "overheaddemo.late.patched"]
        client = demo_package.Client()
        assert (client.create(), late.patched()) == ("wrapped", "late-wrapped")
        switch.set(False)
        assert (client.create(), late.patched()) == ("bare", "orig")
        assert demo_package.helper() == "helper"  # untouched
        switch.set(True)
        assert (client.create(), late.patched()) == ("wrapped", "late-wrapped")
    finally:
        del sys.modules[late.__name__]


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
        assert samples.bare_spans_per_call[mode] == [0.0, 0.0]  # switched off for real
        assert len(samples.pairs_us[mode]) == 2
    assert samples.span_names == {f"chat {canned.MODEL}"}
    assert any(label.endswith("completions.Completions.create") for label in samples.patched)
    summary = stats.summary(results)
    assert set(summary["overhead_us"]) == {"agentmesh"}
    assert summary["ratio_vs_best_peer"] is None
    assert stats.not_one_span(results) == []
    assert stats.table(results, {"agentmesh": "AgentMesh"})[-2].startswith("AgentMesh")


def test_a_new_venv_replaces_only_its_own_checkouts_older_venvs(tmp_path: Path) -> None:
    ours, other = tmp_path / "ours" / "pyproject.toml", tmp_path / "other" / "pyproject.toml"
    for file in (ours, other):
        file.parent.mkdir()
        file.write_text("[project]\n")
    gone = str(tmp_path / "gone" / "pyproject.toml")

    def marker(name: str, key_files: list[str] | None) -> Path:
        path = tmp_path / name / venvs.MARKER
        path.parent.mkdir(exist_ok=True)
        if key_files is not None:
            path.write_text(json.dumps({"requirements": [], "key_files": key_files}))
        return path

    mine = [str(ours)]
    assert venvs._replaced(marker("same-checkout", mine), mine)  # pyright: ignore[reportPrivateUsage]
    assert not venvs._replaced(marker("other-clone", [str(other)]), mine)  # pyright: ignore[reportPrivateUsage]
    assert venvs._replaced(marker("clone-deleted", [gone]), mine)  # pyright: ignore[reportPrivateUsage]
    assert not venvs._replaced(marker("being-made", None), mine)  # pyright: ignore[reportPrivateUsage]
