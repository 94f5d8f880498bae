"""SafeSerializer: round trips, refusing pickles and unknown payloads, the class allowlist."""

from __future__ import annotations

import dataclasses
import enum
import pickle
import sys
import types
import uuid
from collections import deque
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import ormsgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, ConfigDict, Field, RootModel
from structlog.testing import capture_logs

from agentmesh.checkpoint.serde import SafeSerializer
from agentmesh.core.errors import CheckpointError, CheckpointSerdeError

# Classes defined here live in this test module, which is not allowed by default: the
# serializers that must rebuild them allow it by name.
HERE = __name__


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Frozen:
    name: str
    when: datetime
    computed: str = dataclasses.field(init=False, default="")


class Pair(NamedTuple):
    left: int
    right: str = "r"


class Address(BaseModel):
    city: str
    zip_code: str | None = None


class Person(BaseModel):
    id: uuid.UUID
    name: str
    born: datetime
    address: Address
    previous: list[Address] = Field(default_factory=lambda: [])
    extra_info: Any = None


def allowing() -> SafeSerializer:
    return SafeSerializer(allowed_modules=[HERE])


def roundtrip(value: Any, serde: SafeSerializer | None = None) -> Any:
    serde = serde or allowing()
    tag, data = serde.dumps_typed(value)
    assert isinstance(tag, str)
    assert isinstance(data, bytes)
    return serde.loads_typed((tag, data))


def payload_of(fields: dict[str, Any], module: str, qualname: str, code: int = 34) -> bytes:
    """A msgpack payload holding one extension value, as an older/other writer made it."""
    inner = ormsgpack.packb([module, qualname, fields])
    return ormsgpack.packb(ormsgpack.Ext(code, inner))


# -- round trips --------------------------------------------------------------------------------

PLAIN_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -(2**63),
    2**64 - 1,
    2**100,
    -(2**90),
    1.5,
    float("inf"),
    "",
    "héllo ✓",
    b"",
    b"\x00\xff",
    bytearray(b"abc"),
    [],
    [1, "a", None, [2.5]],
    (),
    (1, (2, (3,))),
    {1, 2, 3},
    frozenset({"a"}),
    {},
    {"a": {"b": [1, {"c": None}]}},
    {1: "one", 2: {3: "three"}},
    {(1, "a"): "tuple key", None: "none", 1.5: "float", True: "bool", b"k": "bytes"},
    {uuid.UUID(int=7): "uuid key", date(2024, 1, 1): "date key", frozenset({1}): "frozen"},
    {"outer": [{10: {"inner": (1, 2)}}]},
    datetime(2025, 3, 4, 5, 6, 7, 890123),
    datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC),
    datetime(2025, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    date(1999, 12, 31),
    time(23, 59, 58, 999),
    time(1, 2, tzinfo=timezone(timedelta(hours=2))),
    timedelta(days=-3, seconds=7, microseconds=11),
    uuid.uuid4(),
    Decimal("3.14159265358979323846"),
    Decimal("-0.00"),
    deque([1, 2, 3], maxlen=5),
    Path("/tmp/some/file.txt"),
]


@pytest.mark.parametrize("value", PLAIN_VALUES, ids=lambda v: type(v).__name__)
def test_roundtrip_plain_values(value: Any) -> None:
    loaded = roundtrip(value)
    assert loaded == value
    assert type(loaded) is type(value)


def test_roundtrip_keeps_nested_types() -> None:
    value = {"t": (1, [2, (3, {4})]), "s": {frozenset({1, 2})}, 5: [uuid.UUID(int=1)]}
    loaded = roundtrip(value)
    assert loaded == value
    assert type(loaded["t"][1][1]) is tuple
    assert type(loaded["t"][1][1][1]) is set
    assert type(loaded[5][0]) is uuid.UUID


def test_roundtrip_datetimes_keep_their_zone() -> None:
    zone = ZoneInfo("America/New_York")
    ambiguous = datetime(2025, 11, 2, 1, 30, tzinfo=zone, fold=1)
    loaded = roundtrip(ambiguous)
    assert loaded == ambiguous
    assert loaded.tzinfo == zone
    assert loaded.fold == 1
    assert loaded.utcoffset() == ambiguous.utcoffset()

    naive = datetime(2025, 1, 1, 12)
    assert roundtrip(naive).tzinfo is None

    clock = time(8, 0, tzinfo=zone)
    assert roundtrip(clock).tzinfo == zone


def test_roundtrip_enums_dataclasses_named_tuples() -> None:
    value = {
        "color": Color.RED,
        "blue": Color.BLUE,
        "level": Level.LOW,
        "point": Point(1, 2, ("a",)),
        "frozen": Frozen("f", datetime(2025, 1, 1, tzinfo=UTC)),
        "pair": Pair(1, "x"),
        Color.BLUE: "enum key",
    }
    loaded = roundtrip(value)
    assert loaded == value
    assert loaded["color"] is Color.RED
    assert loaded["level"] is Level.LOW
    assert type(loaded["point"]) is Point
    assert type(loaded["point"].tags) is tuple
    assert type(loaded["pair"]) is Pair
    assert loaded[Color.BLUE] == "enum key"


def test_dataclass_non_init_fields_are_restored() -> None:
    frozen = Frozen("f", datetime(2025, 1, 1, tzinfo=UTC))
    object.__setattr__(frozen, "computed", "later")
    assert roundtrip(frozen).computed == "later"


def test_roundtrip_pydantic_models_nested_with_datetime_and_uuid() -> None:
    person = Person(
        id=uuid.uuid4(),
        name="Ann",
        born=datetime(1990, 5, 17, 8, 30, tzinfo=UTC),
        address=Address(city="Paris", zip_code="75001"),
        previous=[Address(city="Lyon")],
        extra_info=Point(3),
    )
    loaded = roundtrip({"people": [person]})["people"][0]
    assert loaded == person
    assert type(loaded) is Person
    assert type(loaded.address) is Address
    assert type(loaded.born) is datetime
    assert type(loaded.id) is uuid.UUID
    # A model held in an ``Any`` field keeps its class too.
    assert type(loaded.extra_info) is Point


def test_roundtrip_langchain_messages() -> None:
    messages = [
        SystemMessage("be brief"),
        HumanMessage("What is 2+2?", id="h1", name="ann"),
        AIMessage(
            "",
            id="a1",
            tool_calls=[{"name": "add", "args": {"a": 2, "b": 2}, "id": "call-1"}],
            usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
            response_metadata={"model_name": "m", "finish_reason": "tool_calls"},
        ),
        ToolMessage("4", tool_call_id="call-1", name="add", artifact={"raw": [4]}),
        AIMessage("4", id="a2", additional_kwargs={"n": 1}),
        HumanMessage(content=[{"type": "text", "text": "multi-part"}]),
    ]
    loaded = roundtrip({"messages": messages}, SafeSerializer())["messages"]
    assert loaded == messages
    assert [type(m) for m in loaded] == [type(m) for m in messages]
    assert loaded[2].tool_calls[0]["args"] == {"a": 2, "b": 2}
    assert loaded[3].tool_call_id == "call-1"


def test_roundtrip_langgraph_types() -> None:
    from langgraph.types import Command, Interrupt, Send

    value = [Send("node", {"x": 1}), Interrupt(value={"ask": "ok?"}, id="i1"), Command(goto="a")]
    loaded = roundtrip(value, SafeSerializer())
    assert loaded == value
    assert [type(v) for v in loaded] == [Send, Interrupt, Command]


def test_exceptions_are_stored_as_their_repr() -> None:
    assert roundtrip(ValueError("boom")) == "ValueError('boom')"


def test_top_level_tags() -> None:
    serde = SafeSerializer()
    assert serde.dumps_typed(None) == ("null", b"")
    assert serde.dumps_typed(b"raw") == ("bytes", b"raw")
    assert serde.dumps_typed(bytearray(b"raw")) == ("bytearray", b"raw")
    assert serde.dumps_typed({"a": 1})[0] == "msgpack"
    assert serde.loads_typed(("json", b'{"a": [1]}')) == {"a": [1]}


# -- refusing -----------------------------------------------------------------------------------


def test_refuses_pickle_payloads() -> None:
    data = pickle.dumps({"a": 1})
    with pytest.raises(CheckpointSerdeError, match="refusing to unpickle"):
        SafeSerializer().loads_typed(("pickle", data))


@pytest.mark.parametrize("tag", ["cloudpickle", "dill", "", "MSGPACK", "empty"])
def test_refuses_unknown_type_tags(tag: str) -> None:
    with pytest.raises(CheckpointSerdeError, match="unknown type"):
        SafeSerializer().loads_typed((tag, b"\x80"))


def test_serde_errors_are_checkpoint_errors() -> None:
    assert issubclass(CheckpointSerdeError, CheckpointError)


def test_refuses_unknown_extension_codes() -> None:
    data = ormsgpack.packb(ormsgpack.Ext(99, b"\x01"))
    with pytest.raises(CheckpointSerdeError, match="extension 99"):
        SafeSerializer().loads_typed(("msgpack", data))


def test_refuses_garbage() -> None:
    with pytest.raises(CheckpointSerdeError):
        SafeSerializer().loads_typed(("msgpack", b"\xc1"))
    with pytest.raises(CheckpointSerdeError):
        SafeSerializer().loads_typed(("json", b"{not json"))


class Opaque:
    def __init__(self) -> None:
        self.handle = 1


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "builtins.object"),
        ({"deep": [lambda: 1]}, "function"),
        (HumanMessage("x", additional_kwargs={"f": Opaque()}), "Opaque"),
        (Opaque(), "Opaque"),
    ],
)
def test_unencodable_values_raise_naming_the_type(value: Any, type_name: str) -> None:
    with pytest.raises(CheckpointSerdeError, match=type_name) as caught:
        SafeSerializer().dumps_typed(value)
    assert "pickle" in str(caught.value)


def test_objects_of_allowed_modules_are_kept_by_attributes() -> None:
    loaded = roundtrip(Opaque())
    assert type(loaded) is Opaque
    assert loaded.handle == 1


# -- the allowlist ------------------------------------------------------------------------------


def test_disallowed_model_loads_as_dict_with_a_warning() -> None:
    data = allowing().dumps_typed(Address(city="Oslo"))
    with capture_logs() as logs:
        loaded = SafeSerializer().loads_typed(data)
    assert loaded == {"city": "Oslo", "zip_code": None}
    assert any(
        entry["log_level"] == "warning" and entry.get("name") == f"{HERE}.Address" for entry in logs
    ), logs


def test_disallowed_dataclass_enum_and_named_tuple_degrade_to_plain_values() -> None:
    data = allowing().dumps_typed([Point(1), Color.RED, Pair(3)])
    assert SafeSerializer().loads_typed(data) == [
        {"x": 1, "y": 0, "tags": ()},
        "red",
        {"left": 3, "right": "r"},
    ]


def test_strict_refuses_disallowed_classes() -> None:
    data = allowing().dumps_typed({"a": Address(city="Oslo")})
    with pytest.raises(CheckpointSerdeError, match=f"{HERE}.Address"):
        SafeSerializer(strict=True).loads_typed(data)


def test_allowlist_covers_submodules_but_not_lookalikes() -> None:
    fields = {"city": "Rome"}
    assert type(allowing().loads_typed(("msgpack", payload_of(fields, HERE, "Address")))) is Address
    parent = HERE.rpartition(".")[0] or HERE
    by_parent = SafeSerializer(allowed_modules=[parent])
    assert type(by_parent.loads_typed(("msgpack", payload_of(fields, HERE, "Address")))) is Address
    lookalike = SafeSerializer(allowed_modules=[HERE[:-1]]) if len(HERE) > 1 else SafeSerializer()
    assert lookalike.loads_typed(("msgpack", payload_of(fields, HERE, "Address"))) == fields


def test_exact_classes_can_be_allowed() -> None:
    data = allowing().dumps_typed([Address(city="A"), Point(1)])
    only_address = SafeSerializer(allowed_classes=[Address])
    loaded = only_address.loads_typed(data)
    assert type(loaded[0]) is Address
    assert loaded[1] == {"x": 1, "y": 0, "tags": ()}
    widened = SafeSerializer().with_allowlist([(HERE, "Point")])
    assert type(widened.loads_typed(data)[1]) is Point


def test_allowed_module_is_not_a_licence_to_call_anything() -> None:
    # os.system is a function, not a model/dataclass/enum: never called, even when allowed.
    evil = payload_of({"command": "echo pwned"}, "os", "system")
    assert SafeSerializer(allowed_modules=["os"]).loads_typed(("msgpack", evil)) == {
        "command": "echo pwned"
    }
    with pytest.raises(CheckpointSerdeError):
        SafeSerializer(allowed_modules=["os"], strict=True).loads_typed(("msgpack", evil))
    # A Pydantic payload naming a class that is not a model is not rebuilt either.
    not_a_model = payload_of({"x": 1}, HERE, "Point", code=34)
    assert allowing().loads_typed(("msgpack", not_a_model)) == {"x": 1}


def test_missing_class_loads_as_dict() -> None:
    gone = payload_of({"a": 1}, HERE, "RemovedModel")
    assert allowing().loads_typed(("msgpack", gone)) == {"a": 1}
    with pytest.raises(CheckpointSerdeError, match="RemovedModel"):
        SafeSerializer(allowed_modules=[HERE], strict=True).loads_typed(("msgpack", gone))


def test_default_allowlist() -> None:
    assert SafeSerializer().allowed_modules[:4] == (
        "langchain_core",
        "langgraph",
        "crewai",
        "pydantic",
    )
    assert "myapp" in SafeSerializer(allowed_modules=["myapp."]).allowed_modules


# -- schema evolution ---------------------------------------------------------------------------


def _versioned_module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    sys.modules[name] = module
    exec(source, module.__dict__)
    return module


@pytest.fixture
def evolving() -> Any:
    name = "ckpt_serde_evolving_state"

    def define(source: str) -> types.ModuleType:
        return _versioned_module(name, source)

    yield define
    sys.modules.pop(name, None)


def test_old_payload_loads_into_a_model_with_a_new_field(evolving: Any) -> None:
    serde = SafeSerializer(allowed_modules=["ckpt_serde_evolving_state"])
    v1 = evolving(
        "from pydantic import BaseModel\n"
        "class State(BaseModel):\n"
        "    topic: str\n"
        "    obsolete: int = 0\n"
    )
    old = serde.dumps_typed(v1.State(topic="t", obsolete=5))
    v2 = evolving(
        "from pydantic import BaseModel, ConfigDict, Field\n"
        "class State(BaseModel):\n"
        "    model_config = ConfigDict(extra='forbid')\n"
        "    topic: str\n"
        "    attempts: int = 3\n"
        "    notes: list[str] = Field(default_factory=list)\n"
    )
    loaded = serde.loads_typed(old)
    assert type(loaded) is v2.State
    assert (loaded.topic, loaded.attempts, loaded.notes) == ("t", 3, [])
    assert not hasattr(loaded, "obsolete")


def test_old_payload_loads_into_a_dataclass_with_a_new_field(evolving: Any) -> None:
    serde = SafeSerializer(allowed_modules=["ckpt_serde_evolving_state"])
    v1 = evolving(
        "import dataclasses\n"
        "@dataclasses.dataclass\n"
        "class State:\n"
        "    topic: str\n"
        "    gone: str = 'x'\n"
    )
    old = serde.dumps_typed(v1.State(topic="t"))
    v2 = evolving(
        "import dataclasses\n"
        "@dataclasses.dataclass\n"
        "class State:\n"
        "    topic: str\n"
        "    attempts: int = 3\n"
    )
    loaded = serde.loads_typed(old)
    assert type(loaded) is v2.State
    assert (loaded.topic, loaded.attempts) == ("t", 3)


def test_removed_enum_member_degrades_to_its_value(evolving: Any) -> None:
    serde = SafeSerializer(allowed_modules=["ckpt_serde_evolving_state"])
    v1 = evolving("import enum\nclass Mode(enum.Enum):\n    FAST = 'fast'\n    OLD = 'old'\n")
    old = serde.dumps_typed([v1.Mode.OLD, v1.Mode.FAST])
    v2 = evolving("import enum\nclass Mode(enum.Enum):\n    FAST = 'fast'\n")
    assert serde.loads_typed(old) == ["old", v2.Mode.FAST]


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int


def test_model_with_extra_allow_keeps_extra_fields() -> None:
    loose = Loose.model_validate({"a": 1, "b": [2]})
    loaded = roundtrip(loose)
    assert type(loaded) is Loose
    assert loaded.model_dump() == {"a": 1, "b": [2]}


def test_local_classes_load_as_dicts() -> None:
    class Local(BaseModel):
        a: int

    serde = SafeSerializer(allowed_classes=[(HERE, Local.__qualname__)])
    # A class defined inside a function cannot be found by name: it loads as its fields.
    assert serde.loads_typed(serde.dumps_typed(Local(a=1))) == {"a": 1}


class Aliased(BaseModel):
    full_name: str = Field(alias="fullName")
    age: int = 0


def test_models_with_aliases_roundtrip() -> None:
    value = Aliased.model_validate({"fullName": "Ann", "age": 3})
    loaded = roundtrip(value)
    assert type(loaded) is Aliased
    assert (loaded.full_name, loaded.age) == ("Ann", 3)


def test_root_models_generic_models_and_custom_init_models() -> None:
    assert roundtrip(Tags(["a", "b"])) == Tags(["a", "b"])
    assert type(roundtrip(Tags(["a"]))) is Tags
    # Parametrised generics cannot be found by name: they load as their fields.
    generic = RootModel[list[int]]([1, 2])
    assert SafeSerializer().loads_typed(SafeSerializer().dumps_typed(generic)) == {"root": [1, 2]}
    assert roundtrip(Numbers([1, 2])) == Numbers([1, 2])


class Tags(RootModel[list[str]]):
    pass


class Numbers(BaseModel):
    values: list[int]

    def __init__(self, values: list[int], **data: Any) -> None:
        super().__init__(values=values, **data)
