"""The route table format: JSON round trip, ETags, validation errors, the lookups."""

import hashlib
import json
import re

import pytest

from agentmesh.core import AgentMeshError, RouteTableError
from agentmesh.router import BUNDLED_TABLE, ModelStats, RouteTable, Tradeoff
from agentmesh.router.table import MAX_ROUTE_TABLE_BYTES

FULL = RouteTable(
    version=7,
    generated_at=1_800_000_000.5,
    default_mode="shadow",
    modes={"triage": "enforce", "chat": "off"},
    tradeoffs={"*": Tradeoff(10.0, 0.01), "triage": Tradeoff(cost_weight=50.0)},
    models={
        "gpt-4o": ModelStats(100, 3, 0.8, 2.5, 0.004, 0.9),
        "gpt-4o-mini": ModelStats(calls=40),
    },
    breakers={"claude-sonnet-4-5": 1_800_000_030.0},
    predictor={"kind": "linear", "weights": [0.1, -0.2], "nested": {"a": None, "b": "é"}},
)


def _valid() -> dict[str, object]:
    return json.loads(FULL.to_json())


def test_round_trip_keeps_every_field() -> None:
    text = FULL.to_json()
    back = RouteTable.from_json(text)
    assert back == FULL
    assert RouteTable.from_json(text.encode()) == FULL
    assert back.to_json() == text
    assert RouteTable.from_json(BUNDLED_TABLE.to_json()) == BUNDLED_TABLE


def test_json_is_compact_sorted_and_complete() -> None:
    text = FULL.to_json()
    assert " " not in text.replace("é", "")  # no separators with spaces
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert list(data["models"]["gpt-4o"]) == sorted(data["models"]["gpt-4o"])
    assert data["models"]["gpt-4o"] == {
        "calls": 100,
        "errors": 3,
        "latency_p50_s": 0.8,
        "latency_p95_s": 2.5,
        "cost_mean_usd": 0.004,
        "quality_mean": 0.9,
    }
    assert data["tradeoffs"]["triage"] == {"cost_weight": 50.0, "latency_weight": 0.0}
    assert data["breakers"] == {"claude-sonnet-4-5": 1_800_000_030.0}
    assert data["default_mode"] == "shadow"
    assert BUNDLED_TABLE.version == 0
    assert json.loads(BUNDLED_TABLE.to_json())["predictor"] is None


def test_missing_fields_take_defaults_and_unknown_ones_are_ignored() -> None:
    table = RouteTable.from_json('{"version": 2, "future_field": [1, 2], "models": {"m": {}}}')
    assert table.version == 2
    assert table.default_mode is None
    assert table.models["m"] == ModelStats()
    assert table.predictor is None
    assert RouteTable.from_json("{}") == BUNDLED_TABLE


def test_etag_is_stable_and_changes_with_content() -> None:
    same = RouteTable.from_json(FULL.to_json())
    assert same.etag == FULL.etag
    # insertion order does not matter: keys are sorted
    reordered = RouteTable(
        version=FULL.version,
        generated_at=FULL.generated_at,
        default_mode=FULL.default_mode,
        modes={"chat": "off", "triage": "enforce"},
        tradeoffs=dict(reversed(list(FULL.tradeoffs.items()))),
        models=dict(reversed(list(FULL.models.items()))),
        breakers=FULL.breakers,
        predictor={"nested": {"b": "é", "a": None}, "weights": [0.1, -0.2], "kind": "linear"},
    )
    assert reordered.etag == FULL.etag
    assert re.fullmatch(r'"7-[0-9a-f]{16}"', FULL.etag)
    digest = hashlib.sha256(FULL.to_json().encode()).hexdigest()[:16]
    assert FULL.etag == f'"7-{digest}"'
    moved = RouteTable.from_json(FULL.to_json().replace("1800000030.0", "1800000031.0"))
    assert moved.version == FULL.version
    assert moved.etag != FULL.etag
    assert BUNDLED_TABLE.etag != FULL.etag


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"version": -1}, "the version must be a whole number of 0 or more"),
        ({"version": 1.5}, "the version must be a whole number"),
        ({"version": True}, "the version must be a whole number"),
        ({"version": "3"}, "the version must be a whole number"),
        ({"generated_at": "now"}, "generated_at (seconds since the epoch) must be a number"),
        ({"generated_at": -5}, "generated_at (seconds since the epoch) must be a number of 0"),
        ({"default_mode": "always"}, "default_mode must be one of off, shadow, enforce or null"),
        ({"default_mode": 1}, "default_mode must be one of"),
        ({"modes": {"triage": "on"}}, "the mode of task class 'triage' must be one of off"),
        ({"modes": {"triage": None}}, "the mode of task class 'triage' must be one of"),
        ({"modes": ["triage"]}, "modes must be a JSON object, got a list"),
        ({"modes": {"": "shadow"}}, "modes has an empty task class name"),
        (
            {"tradeoffs": {"triage": {"cost_weight": -1}}},
            "the trade-off of task class 'triage': cost_weight must be a number of 0 or more",
        ),
        (
            {"tradeoffs": {"*": {"latency_weight": -0.5}}},
            "the trade-off of task class '*': latency_weight must be a number of 0 or more",
        ),
        (
            {"tradeoffs": {"*": {"latency_weight": "fast"}}},
            "latency_weight must be a number of 0 or more, got the string 'fast'",
        ),
        ({"tradeoffs": {"*": 3}}, "the trade-off of task class '*' must be a JSON object"),
        ({"tradeoffs": "cheap"}, "tradeoffs must be a JSON object"),
        ({"models": {"m": {"calls": -1}}}, "the statistics of model 'm': calls must be a whole"),
        ({"models": {"m": {"calls": 2.5}}}, "the statistics of model 'm': calls must be a whole"),
        (
            {"models": {"m": {"calls": 1, "errors": 2}}},
            "the statistics of model 'm': errors (2) must not exceed calls (1)",
        ),
        (
            {"models": {"m": {"latency_p50_s": -0.1}}},
            "the statistics of model 'm': latency_p50_s must be a number of 0 or more",
        ),
        ({"models": {"m": {"latency_p95_s": "slow"}}}, "latency_p95_s must be a number"),
        ({"models": {"m": {"cost_mean_usd": -1}}}, "cost_mean_usd must be a number of 0 or more"),
        (
            {"models": {"m": {"quality_mean": 1.5}}},
            "the statistics of model 'm': quality_mean must be a number between 0 and 1",
        ),
        ({"models": {"m": []}}, "the statistics of model 'm' must be a JSON object"),
        (
            {"breakers": {"gpt-4o": "soon"}},
            "the breaker of model 'gpt-4o' (seconds since the epoch) must be a number",
        ),
        ({"breakers": [1.0]}, "breakers must be a JSON object"),
        ({"predictor": [1, 2]}, "the predictor must be a JSON object, got a list"),
        ({"predictor": "weights"}, "the predictor must be a JSON object, got the string"),
        ({"predictor": 3}, "the predictor must be a JSON object, got the number 3"),
    ],
)
def test_bad_fields_are_refused_in_plain_words(change: dict[str, object], words: str) -> None:
    data = _valid() | change
    with pytest.raises(RouteTableError) as caught:
        RouteTable.from_json(json.dumps(data))
    assert words in str(caught.value)
    assert isinstance(caught.value, AgentMeshError)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "the route table is not valid JSON"),
        ("{", "the route table is not valid JSON"),
        ("[]", "the route table must be a JSON object, got a list"),
        ("null", "the route table must be a JSON object, got null"),
        ('{"generated_at": NaN}', "the route table is not valid JSON: NaN"),
        ('{"breakers": {"m": Infinity}}', "the route table is not valid JSON: Infinity"),
        (b"\xff\xfe{", "the route table is not valid JSON"),
        ('{"predictor": ' + "[" * 100_000 + "]" * 100_000 + "}", "not valid JSON"),
    ],
)
def test_bad_documents_are_refused(text: str | bytes, words: str) -> None:
    with pytest.raises(RouteTableError, match="route table") as caught:
        RouteTable.from_json(text)
    assert words in str(caught.value)


def test_size_bound() -> None:
    padding = "x" * (MAX_ROUTE_TABLE_BYTES + 1)
    text = json.dumps({"version": 1, "predictor": {"blob": padding}})
    with pytest.raises(RouteTableError, match=r"bytes; at most 16777216 are accepted"):
        RouteTable.from_json(text)
    with pytest.raises(RouteTableError, match="at most"):
        RouteTable.from_json(text.encode())
    fits = json.dumps({"version": 1, "predictor": {"blob": "x" * (MAX_ROUTE_TABLE_BYTES - 100)}})
    assert RouteTable.from_json(fits).version == 1


def test_unwritable_predictor_is_refused() -> None:
    with pytest.raises(RouteTableError, match="cannot be written as JSON"):
        RouteTable(predictor={"bad": object()}).to_json()
    with pytest.raises(RouteTableError, match="cannot be written as JSON"):
        _ = RouteTable(predictor={"bad": float("nan")}).etag


def test_mode_for() -> None:
    assert FULL.mode_for("triage", "off") == "enforce"
    assert FULL.mode_for("chat", "enforce") == "off"
    assert FULL.mode_for("unknown", "enforce") == "shadow"  # default_mode
    assert FULL.mode_for(None, "enforce") == "shadow"
    assert BUNDLED_TABLE.mode_for("triage", "enforce") == "enforce"  # the app's own mode
    assert BUNDLED_TABLE.mode_for(None, "off") == "off"


def test_tradeoff_for() -> None:
    assert FULL.tradeoff_for("triage") == Tradeoff(50.0, 0.0)
    assert FULL.tradeoff_for("chat") == Tradeoff(10.0, 0.01)  # the "*" entry
    assert FULL.tradeoff_for(None) == Tradeoff(10.0, 0.01)
    assert BUNDLED_TABLE.tradeoff_for("triage") == Tradeoff(0.0, 0.0)
    only = RouteTable(tradeoffs={"triage": Tradeoff(1.0, 2.0)})
    assert only.tradeoff_for("chat") == Tradeoff()


def test_open_circuits() -> None:
    table = RouteTable(breakers={"a": 100.0, "b": 200.0})
    assert table.open_circuits(50.0) == frozenset({"a", "b"})
    assert table.open_circuits(100.0) == frozenset({"b"})  # until is exclusive
    assert table.open_circuits(150.0) == frozenset({"b"})
    assert table.open_circuits(250.0) == frozenset()
    assert BUNDLED_TABLE.open_circuits(0.0) == frozenset()


def test_error_rate() -> None:
    assert ModelStats(calls=10, errors=3).error_rate == pytest.approx(0.3)
    assert ModelStats().error_rate == 0.0
