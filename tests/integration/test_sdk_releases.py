"""The framework and provider instrumentations on releases other than the workspace's.

The workspace resolves openai 2.x (CrewAI pins ``openai<3``), anthropic 2.x and langgraph
1.x; apps run openai 1.x too, and 3.x (whose HTTP client is ``httpx2``), older anthropic
releases and langgraph 0.x, and their other packages may hold wrapt at 1.x or CrewAI at 1.14.
For openai 1.40 (the oldest release supported), the last 1.x and 3.63, anthropic 0.40 (the
oldest supported), langgraph 0.5 (the oldest supported) and the last 0.x, wrapt 1.16 (the
oldest supported) and crewai 1.14, this test reruns that instrumentation's own tests (chat,
streams, stream usage, Responses, embeddings, helpers, fail-open, the hot path, instrumenting
before the import; messages, streams, fail-open; nodes, routes, subgraphs, interrupts, tools,
resume; crews and flows) in a throwaway venv holding that release and
AgentMesh's packages from this checkout, made with ``uv`` and cached by the overhead
benchmark's ``bench/_overhead/venvs.py``. The tests talk to the fake provider over real HTTP,
so each release's own transport and models are exercised. On the oldest releases the tests of
APIs they do not have yet are left out (listed below). Making a venv needs ``uv`` and PyPI;
when either is missing the test fails with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from _release_gaps import ANTHROPIC_0_40, LANGGRAPH_0_5, OPENAI_1_40, deselected
from _venv_pytest import run_suite

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _overhead import peers, venvs  # noqa: E402 - bench/ is not a package of the workspace

TESTS = ROOT / "tests" / "unit" / "instrumentation"
FULL = (
    "test_openai_chat.py",
    "test_openai_failopen.py",
    "test_openai_helpers.py",
    "test_openai_hot_path.py",
    "test_openai_stream_usage.py",
    "test_openai_streaming.py",
    "test_import_after_init.py",
    "openai_api",
)
"""The OpenAI tests that need no ``httpx`` of their own (openai 3 does not install it)."""
OLDEST = (
    "test_openai_chat.py",
    "test_openai_failopen.py",
    "test_openai_hot_path.py",
    "test_openai_stream_usage.py",
    "test_openai_streaming.py",
    "test_import_after_init.py",
    "openai_api/test_openai_embeddings.py",
    *deselected(OPENAI_1_40),
)
"""What openai 1.40 has the APIs for."""
ANTHROPIC_OLDEST = (
    "test_anthropic_messages.py",
    "test_anthropic_streams.py",
    "test_anthropic_failopen.py",
    "test_anthropic_dedupe.py",
    "test_import_after_init.py",
    *deselected(ANTHROPIC_0_40),
)
"""What anthropic 0.40 has the APIs for."""
LANGGRAPH = (
    "test_langgraph_async.py",
    "test_langgraph_nodes.py",
    "test_langgraph_routing.py",
    "test_langgraph_subgraphs.py",
    "test_langgraph_supervisor.py",
    "test_langgraph_tools.py",
    "test_handoff_digest.py",
    "test_resume_in_app.py",
)
"""The LangGraph instrumentation's tests (nodes, routes, subgraphs, interrupts, tools, resume)."""
LANGGRAPH_0_5 = (
    *LANGGRAPH,
    *deselected(LANGGRAPH_0_5),
)
WRAPT_OLDEST = (
    *FULL,
    "test_anthropic_messages.py",
    "test_anthropic_streams.py",
    "test_anthropic_failopen.py",
    "test_anthropic_dedupe.py",
)
"""The provider tests on wrapt 1.16 (the oldest supported): their stream proxies subclass
``wrapt.ObjectProxy``, which wrapt 1.x cannot subscript (``ObjectProxy[T]`` broke every patch
there until the generic base became a type-checking-only alias)."""
CREWAI_1_14 = (
    "crews",
    # crewai.hooks.contexts (the step hooks' contexts) arrived after 1.14
    *("--ignore", "crews/test_crewai_received_digest.py"),
    # CrewAI 1.14.7's own native tool calling fails against an OpenAI-compatible server, with or
    # without AgentMesh (its TaskOutput gets the tool calls as `raw`: a ValidationError), so
    # every test whose agent calls a tool (delegation is a tool too) is left out on it
    *("--deselect", "crews/test_crewai_delegation.py"),
    *(
        item
        for test in (
            "test_crewai_agent_kickoff.py::test_kickoff_span_with_tool_and_llm_children",
            "test_crewai_content.py::test_content_of_delegation_tools_and_task_context",
            "test_crewai_example.py::test_example_runs_offline_and_prints_the_span_tree",
            "test_crewai_step_markers.py::test_crew_steps_are_marked_as_they_start",
            "test_crewai_tools.py::test_native_tool_call_span_tree",
            "test_crewai_tools.py::test_parallel_tool_calls_stay_under_the_agent",
            "test_crewai_tools.py::test_failing_tool_is_recorded_and_the_crew_goes_on",
        )
        for item in ("--deselect", f"crews/{test}")
    ),
)  # fmt: skip
"""The CrewAI instrumentation's tests on 1.14 (the workspace has 1.15): flows, crews,
sequential and async kickoffs, agents without a crew, content capture, fail-open."""
SAVERS_2_1 = (
    "tests/checkpoint/test_ckpt_langgraph_saver.py",
    "tests/checkpoint/test_ckpt_chunks.py",
    "tests/checkpoint/test_ckpt_inline_values.py",
    "tests/checkpoint/test_ckpt_fork.py",
)
"""The LangGraph savers' tests on langgraph-checkpoint 2.1 (the oldest supported), under
langgraph 0.6: graphs, interrupts, history, time travel, thread management, chunks, fencing."""
RELEASES = {
    "openai==1.40.0": (OLDEST, 30),
    "openai==1.109.1": (FULL, 50),
    "openai==3.63.0": (FULL, 50),
    "anthropic==0.40.0": (ANTHROPIC_OLDEST, 25),
    "langgraph==0.5.4": (LANGGRAPH_0_5, 30),
    "langgraph==0.6.11": (LANGGRAPH, 30),
    "wrapt==1.16.0": (WRAPT_OLDEST, 80),
    "crewai==1.14.7": (CREWAI_1_14, 30),
    "langgraph-checkpoint==2.1.2": (SAVERS_2_1, 80),
}
"""Each release, the tests run on it, and how many at least must pass."""
PINS = {
    "openai==1.40.0": ("httpx<0.28",),
    "crewai==1.14.7": ("litellm==1.95.1",),
    "langgraph-checkpoint==2.1.2": ("langgraph==0.6.11",),
}
"""What a release needs pinned beside it: openai before 1.55.3 passes ``proxies`` to httpx,
which httpx 0.28 no longer takes (an SDK bug its users meet too, not an AgentMesh one)."""
WORKSPACE = {
    "openai": f"openai=={version('openai')}",
    "anthropic": f"anthropic=={version('anthropic')}",
}
"""The SDKs at the workspace's releases, beside the release under test."""
"""The other SDK, at the workspace's release."""


CHECKPOINT = {
    "langgraph": "checkpoint",
    "crewai": "checkpoint",
    "langgraph-checkpoint": "checkpoint[duckdb,redis,postgres]",
}
"""The agentmesh-checkpoint install (from this checkout) of the venvs whose tests need it."""
OWN_OTEL = ("crewai",)
"""Releases that pin their own opentelemetry-sdk (CrewAI 1.14: < 1.35): it is let choose."""


def _venv(release: str) -> peers.Peer:
    sdk = release.split("==")[0]
    others = tuple(pin for name, pin in WORKSPACE.items() if name != sdk)
    packages = ["core", "router", "instrumentation"]
    checkpoint = CHECKPOINT.get(sdk)
    if checkpoint is not None:
        packages.append("checkpoint")  # its pyproject is part of the venv's cache key then
    return peers.Peer(
        name=f"compat-{release.replace('==', '-')}",
        label=release,
        dist=sdk,
        requirements=(
            release,
            *PINS.get(release, ()),
            *others,
            f"pytest=={version('pytest')}",
            f"pytest-asyncio=={version('pytest-asyncio')}",
            *("-e", str(ROOT / "core"), "-e", str(ROOT / "router")),
            *("-e", f"{ROOT / 'instrumentation'}[testing]"),
            *(("-e", str(ROOT / checkpoint)) if checkpoint is not None else ()),
        ),
        key_files=tuple(ROOT / pkg / "pyproject.toml" for pkg in packages),
        common=() if sdk in OWN_OTEL else (f"opentelemetry-sdk=={version('opentelemetry-sdk')}",),
    )


def _argument(item: str) -> str:
    """A test path (or node id) relative to the repository, where pytest runs."""
    if item.startswith(("-", "tests/")):  # options and repository paths
        return item
    return str((TESTS / item).relative_to(ROOT))


@pytest.mark.parametrize("release", list(RELEASES))
def test_the_instrumentation_tests_pass_on_other_sdk_releases(release: str) -> None:
    sdk, number = release.split("==")
    try:
        python = venvs.ensure(_venv(release), venvs.default_cache_dir()).python
    except RuntimeError as exc:
        pytest.fail(f"cannot make the {release} venv (uv and PyPI are needed): {exc}")
    installed = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({sdk!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert installed.stdout.strip() == number, installed.stderr
    suite, least = RELEASES[release]
    run_suite(python, [_argument(item) for item in suite], least=least, timeout_s=600)
