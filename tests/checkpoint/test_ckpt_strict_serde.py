"""The LangGraph savers never call what a stored checkpoint names (StrictJsonPlusSerializer).

LangGraph's ``JsonPlusSerializer`` stores values as ``(module, name, args)`` and, by default,
imports and calls whatever a payload names when it loads it. A payload written into the store
by anyone with access to it (no pickle involved) made every app reading the thread run
``os.system``. Our savers' default serializer writes the same bytes and rebuilds only allowed
classes; these tests forge such payloads in every form LangGraph reads.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import subprocess
import uuid
from collections import deque
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple, TypedDict
from zoneinfo import ZoneInfo

import ormsgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import START, StateGraph
from langgraph.types import Send
from pydantic import BaseModel, SecretStr
from structlog.testing import capture_logs

from agentmesh.checkpoint.langgraph import (
    AgentMeshSaver,
    MemorySaver,
    RedisSaver,
    StrictJsonPlusSerializer,
)
from agentmesh.checkpoint.store.memory import MemoryCheckpointStore

HERE = __name__


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Ticket:
    key: str
    points: int = 1


class Pair(NamedTuple):
    left: int
    right: str


class Order(BaseModel):
    id: int
    note: str = ""


def _ext(code: int, *fields: Any) -> bytes:
    """A msgpack document holding one LangGraph extension value, as a forger writes it."""
    inner = ormsgpack.packb(fields)
    return ormsgpack.packb({"v": ormsgpack.Ext(code, inner)})


FORGED = {  # every way LangGraph's format names a callable to run on load
    "single_arg": _ext(0, "os", "system", "echo forged"),
    "positional": _ext(1, "os", "system", ["echo forged"]),
    "keywords": _ext(2, "subprocess", "Popen", {"args": ["echo", "forged"]}),
    "method": _ext(3, "os", "system", "echo forged", "__call__"),
    "pydantic_v1": _ext(4, "subprocess", "Popen", {"args": ["echo", "forged"]}),
    "pydantic_v2": _ext(5, "subprocess", "Popen", {"args": ["echo", "forged"]}, None),
}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """os.system and subprocess.Popen replaced by recorders: what a payload made us run."""
    seen: list[object] = []

    def system(command: object) -> int:
        seen.append(command)
        return 0

    class Popen:
        def __init__(self, *args: object, **kwargs: object) -> None:
            seen.append((args, kwargs))

    monkeypatch.setattr(os, "system", system)
    monkeypatch.setattr(subprocess, "Popen", Popen)
    return seen


@pytest.mark.parametrize("form", sorted(FORGED))
def test_the_savers_default_serializer_calls_nothing_a_payload_names(
    form: str, calls: list[object]
) -> None:
    serde = AgentMeshSaver(MemoryCheckpointStore()).serde
    with capture_logs() as logs:
        loaded = serde.loads_typed(("msgpack", FORGED[form]))
    assert calls == []  # nothing ran
    assert isinstance(loaded, dict)
    assert loaded["v"] != 0  # the stored data came back, not a call's result
    (warning,) = [log for log in logs if log["event"] == "agentmesh.checkpoint.class_not_rebuilt"]
    assert warning["log_level"] == "warning"
    assert "is not allowed" in warning["reason"]


def test_langgraphs_own_default_would_have_run_it(calls: list[object]) -> None:
    """The hazard the default closes: the permissive JsonPlusSerializer calls os.system."""
    JsonPlusSerializer().loads_typed(("msgpack", FORGED["single_arg"]))
    assert calls == ["echo forged"]


def test_standard_types_messages_and_sends_round_trip() -> None:
    serde = StrictJsonPlusSerializer()
    value = {
        "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "day": date(2026, 1, 2),
        "at": time(3, 4, 5),
        "took": timedelta(seconds=90),
        "zone": timezone(timedelta(hours=2)),
        "tz": ZoneInfo("Europe/Paris"),
        "id": uuid.UUID(int=7),
        "money": Decimal("1.10"),
        "tags": {"a", "b"},
        "frozen": frozenset({1}),
        "queue": deque([1, 2]),
        "path": Path("/tmp/x"),
        "messages": [HumanMessage("hi"), AIMessage("hello", id="m2")],
        "send": Send("worker", {"n": 1}),
        "secret": SecretStr("s3cret"),
    }
    loaded = serde.loads_typed(serde.dumps_typed(value))
    assert loaded == value
    assert serde.dumps_typed(value) == JsonPlusSerializer().dumps_typed(value)  # same bytes


def test_app_classes_come_back_as_data_unless_their_module_is_allowed() -> None:
    value = {
        "colour": Colour.RED,
        "ticket": Ticket("T-1", 3),
        "pair": Pair(1, "x"),
        "order": Order(id=5, note="n"),
    }
    stored = StrictJsonPlusSerializer().dumps_typed(value)
    with capture_logs() as logs:
        as_data = StrictJsonPlusSerializer().loads_typed(stored)
    assert as_data == {
        "colour": "red",
        "ticket": {"key": "T-1", "points": 3},
        "pair": {"left": 1, "right": "x"},
        "order": {"id": 5, "note": "n"},
    }
    named = sorted(log["name"] for log in logs)
    assert named == sorted(f"{HERE}.{c}" for c in ("Colour", "Ticket", "Pair", "Order"))
    assert all(
        log["allow_with"] == f"StrictJsonPlusSerializer(allowed_modules=[{HERE!r}])" for log in logs
    )
    assert StrictJsonPlusSerializer(allowed_modules=[HERE]).loads_typed(stored) == value
    exact = StrictJsonPlusSerializer(allowed_classes=[Ticket, (HERE, "Colour")])
    loaded = exact.loads_typed(stored)
    assert loaded["ticket"] == Ticket("T-1", 3)
    assert loaded["colour"] is Colour.RED
    assert loaded["order"] == {"id": 5, "note": "n"}


def test_langgraphs_strict_mode_allowlist_extends_ours() -> None:
    stored = StrictJsonPlusSerializer().dumps_typed(Ticket("T-2"))
    serde = StrictJsonPlusSerializer()
    widened = serde.with_msgpack_allowlist([(HERE, "Ticket")])
    assert widened.loads_typed(stored) == Ticket("T-2")
    assert serde.loads_typed(stored) == {"key": "T-2", "points": 1}  # unchanged
    assert serde.with_msgpack_allowlist([]) is serde


def test_an_allowed_module_still_cannot_name_a_function(calls: list[object]) -> None:
    forged = _ext(0, HERE, "_shout", "x")
    assert StrictJsonPlusSerializer(allowed_modules=[HERE]).loads_typed(("msgpack", forged)) == {
        "v": "x"
    }
    assert calls == []


def _shout(text: str) -> str:  # pyright: ignore[reportUnusedFunction] - named by a payload
    os.system(text)
    return text


class State(TypedDict, total=False):
    v: Any


def _graph(saver: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("n", lambda state: {})
    builder.add_edge(START, "n")
    return builder.compile(checkpointer=saver)


def test_a_tampered_thread_read_through_a_real_graph_runs_nothing(calls: list[object]) -> None:
    forged = enum.Enum("system", {"X": "echo forged"})  # an "enum" claiming to be os.system
    forged.__module__ = "os"
    config = {"configurable": {"thread_id": "tampered"}}
    with MemorySaver.from_conn_string() as saver:
        graph = _graph(saver)
        graph.invoke({"v": forged.X}, config)  # type: ignore[arg-type]
        state = graph.get_state(config)
    assert state.values["v"] == "echo forged"
    assert calls == []


def test_a_tampered_thread_on_redis_runs_nothing(
    redis_address: tuple[str, int], calls: list[object]
) -> None:
    host, port = redis_address
    forged = enum.Enum("system", {"X": "echo forged"})
    forged.__module__ = "os"
    prefix = f"strict-serde-{uuid.uuid4().hex}"
    url = f"redis://{host}:{port}/0"
    config = {"configurable": {"thread_id": "tampered"}}
    with RedisSaver.from_conn_string(url, prefix=prefix) as writer:
        _graph(writer).invoke({"v": forged.X}, config)  # type: ignore[arg-type]
    with RedisSaver.from_conn_string(url, prefix=prefix) as reader:  # a later reader
        state = _graph(reader).get_state(config)
        reader.delete_thread("tampered")
    assert state.values["v"] == "echo forged"
    assert calls == []
