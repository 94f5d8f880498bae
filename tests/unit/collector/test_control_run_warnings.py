"""Several warnings about one run: every one stays in the control document.

The document holds one entry per run (what every app reads); a warned run's entry also lists
every warn decision in ``warnings``, so warnings decided together (a latency, token and cost
spike on one call) all reach the app, and an app that knows nothing of ``warnings`` still reads
the entry as before. A stop still wins over warnings.
"""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from agentmesh.collector.detection import Detection
from agentmesh.collector.recovery import (
    ControlDocument,
    MemoryControlState,
    RecoveryEngine,
    RedisControlState,
    RunControl,
)
from agentmesh.collector.recovery import document as control_document
from agentmesh.instrumentation.control._document import ControlDocument as AppDocument
from agentmesh.instrumentation.control._document import RunControl as AppRunControl

T0 = 1_800_000_000.0
SPIKES = ("latency_spike", "token_spike", "cost_spike")


def _warn(kind: str, at: float = T0) -> RunControl:
    return RunControl("warn", f"det-{kind}", kind, f"{kind} on one call", None, at)


def _stop(at: float = T0) -> RunControl:
    return RunControl("stop", "det-loop", "ping_pong", "a → b → a → b", "ckpt-1", at)


async def test_three_warnings_decided_together_are_all_listed() -> None:
    async with MemoryControlState() as state:
        for n, kind in enumerate(SPIKES):
            assert await state.set_run("run-1", _warn(kind, T0 + n / 100))
        entry = state.current.runs["run-1"]
    assert state.current.version == 3
    # the entry is the latest warning (what apps that do not read the list see) ...
    assert (entry.action, entry.type, entry.detection_id) == (
        "warn",
        "cost_spike",
        "det-cost_spike",
    )
    # ... and the list holds every one, oldest first
    assert [w.type for w in entry.warnings] == list(SPIKES)
    assert all(w.action == "warn" and w.warnings == () for w in entry.warnings)


async def test_a_warning_already_listed_changes_nothing() -> None:
    async with MemoryControlState() as state:
        assert await state.set_run("run-1", _warn("latency_spike"))
        assert await state.set_run("run-1", _warn("token_spike"))
        assert not await state.set_run("run-1", _warn("latency_spike", T0 + 5))
        assert not await state.set_run("run-1", _warn("token_spike"))
        assert state.current.version == 2
        assert len(state.current.runs["run-1"].warnings) == 2


async def test_a_stop_wins_over_warnings_and_keeps_them() -> None:
    async with MemoryControlState() as state:
        await state.set_run("run-1", _warn("latency_spike"))
        await state.set_run("run-1", _warn("token_spike"))
        assert await state.set_run("run-1", _stop())
        entry = state.current.runs["run-1"]
        assert (entry.action, entry.type, entry.resume_checkpoint_id) == (
            "stop",
            "ping_pong",
            "ckpt-1",
        )
        assert [w.type for w in entry.warnings] == ["latency_spike", "token_spike"]
        version = state.current.version
        # a stop stays: later warnings or stops change nothing
        assert not await state.set_run("run-1", _warn("cost_spike"))
        assert not await state.set_run("run-1", RunControl("stop", "det-2", "runaway", "", None, 1))
        assert state.current.version == version


async def test_the_list_keeps_the_latest_warnings() -> None:
    MAX_WARNINGS = control_document.MAX_WARNINGS  # noqa: N806
    async with MemoryControlState() as state:
        for n in range(MAX_WARNINGS + 5):
            await state.set_run("run-1", _warn(f"kind-{n}"))
        warnings = state.current.runs["run-1"].warnings
    assert len(warnings) == MAX_WARNINGS
    assert warnings[0].type == "kind-5"
    assert warnings[-1].type == f"kind-{MAX_WARNINGS + 4}"


async def test_the_warnings_round_trip_and_a_stop_alone_keeps_the_contract_form() -> None:
    async with MemoryControlState() as state:
        for kind in SPIKES:
            await state.set_run("warned", _warn(kind))
        await state.set_run("stopped", _stop())
        document = state.current
    assert ControlDocument.from_json(document.to_json()) == document
    public = json.loads(document.to_json(public=True))
    assert "warnings" not in public["runs"]["stopped"]  # unchanged for runs never warned
    assert [w["type"] for w in public["runs"]["warned"]["warnings"]] == list(SPIKES)
    assert public["runs"]["warned"]["warnings"][0] == {
        "action": "warn",
        "detection_id": "det-latency_spike",
        "type": "latency_spike",
        "explanation": "latency_spike on one call",
        "resume_checkpoint_id": None,
        "at": T0,
    }


async def test_apps_that_do_not_know_the_list_still_read_the_document() -> None:
    # The instrumentation's own reader, as an app released before the list reads it.
    async with MemoryControlState() as state:
        for kind in SPIKES:
            await state.set_run("warned", _warn(kind))
        await state.set_run("stopped", _stop())
        text = state.current.to_json(public=True)
    app = AppDocument.parse(text)
    assert app.version == 4
    assert (app.runs["warned"].action, app.runs["warned"].type) == ("warn", "cost_spike")
    assert (app.runs["stopped"].action, app.runs["stopped"].resume_checkpoint_id) == (
        "stop",
        "ckpt-1",
    )
    # each listed warning is a run entry the same reader parses
    listed = json.loads(text)["runs"]["warned"]["warnings"]
    parsed = [AppRunControl.from_json("warned", item) for item in listed]
    assert [(p.action, p.type) for p in parsed if p is not None] == [("warn", k) for k in SPIKES]


@pytest.mark.parametrize(
    ("warnings", "message"),
    [
        ('"no"', r"runs\['r'\].warnings must be a list"),
        (
            '[{"action": "stop", "detection_id": "d", "type": "t", "explanation": "", "at": 1}]',
            r"runs\['r'\].warnings\[0\].action must be warn",
        ),
        ("[1]", r"runs\['r'\].warnings\[0\] must be a JSON object"),
    ],
)
def test_a_stored_document_with_malformed_warnings_is_refused(warnings: str, message: str) -> None:
    entry = '{"action": "warn", "detection_id": "d", "type": "t", "explanation": "", "at": 1'
    text = '{"version": 1, "runs": {"r": ' + entry + ', "warnings": ' + warnings + "}}}"
    with pytest.raises(ValueError, match=message):
        ControlDocument.from_json(text)


def _spike(kind: str) -> Detection:
    return Detection(f"det-{kind}", kind, "warning", "t" * 32, "run-9", "worker", (), kind, 0)


async def test_the_engine_lists_every_warning_of_a_run() -> None:
    async with RecoveryEngine(MemoryControlState(), expire_interval_seconds=3600) as engine:
        taken = [a for kind in SPIKES for a in await engine.apply(_spike(kind))]
        entry = engine.control.current.runs["run-9"]
    assert [(a.kind, a.detection_type) for a in taken] == [("warn_run", k) for k in SPIKES]
    assert [w.detection_id for w in entry.warnings] == [f"det-{k}" for k in SPIKES]


# --- Redis: two collectors warning about one run at once ------------------------------------


@pytest.fixture
def redis_url(redis_address: tuple[str, int]) -> str:
    host, port = redis_address
    return f"redis://{host}:{port}/0"


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"test-warnings-{secrets.token_hex(4)}:"
    yield name
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    await client.delete(f"{name}control")
    await client.aclose()


async def test_warnings_from_two_collectors_are_all_kept(redis_url: str, prefix: str) -> None:
    async with (
        RedisControlState(redis_url, prefix=prefix) as a,
        RedisControlState(redis_url, prefix=prefix) as b,
    ):
        await asyncio.gather(
            a.set_run("run-1", _warn("latency_spike")),
            b.set_run("run-1", _warn("token_spike")),
            a.set_run("run-1", _warn("cost_spike")),
        )
        stored = await b.get()
    assert {w.type for w in stored.runs["run-1"].warnings} == set(SPIKES)


async def test_a_warning_listed_by_an_older_collector_stays_listed() -> None:
    # Its entry has no `warnings`: the next warning keeps it in the list.
    older = ControlDocument(1, {"run-1": _warn("latency_spike")})
    assert older.runs["run-1"].warnings == ()
    state = MemoryControlState()
    await state.update(lambda _: older)
    assert await state.set_run("run-1", _warn("token_spike"))
    warnings = state.current.runs["run-1"].warnings
    assert [w.type for w in warnings] == ["latency_spike", "token_spike"]
