"""Route requests, prompt features, decisions and the decision log."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from agentmesh.core import semconv
from agentmesh.router import (
    DecisionLog,
    PromptFeatures,
    RouteDecision,
    RouteRequest,
    new_decision_id,
    prompt_features,
)


def _decision(model: str = "gpt-4o", **request: object) -> RouteDecision:
    req = RouteRequest("openai", model, **request)  # pyright: ignore[reportArgumentType]
    return RouteDecision.new(
        req, "pass_through", (model, "gpt-4o-mini"), (1.0, 0.0), model, "requested model"
    )


def test_features_of_an_openai_chat_request() -> None:
    kwargs: dict[str, object] = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_object"},
    }
    assert prompt_features(kwargs) == PromptFeatures(
        message_count=2, total_chars=9 + 13, has_tools=True, has_images=True, wants_json=True
    )


def test_features_of_anthropic_and_responses_requests() -> None:
    source: dict[str, object] = {}
    anthropic = prompt_features(
        {
            "system": "Sys",
            "messages": [{"role": "user", "content": [{"type": "image", "source": source}]}],
        }
    )
    assert (anthropic.message_count, anthropic.total_chars, anthropic.has_images) == (1, 3, True)
    responses = prompt_features(
        {"input": "Hello", "instructions": "Hi", "text": {"format": {"type": "json_schema"}}}
    )
    assert (responses.message_count, responses.total_chars, responses.wants_json) == (1, 7, True)


def test_features_never_raise_on_odd_shapes() -> None:
    odd = prompt_features({"messages": [None, 3, {"content": object()}], "tools": None})
    assert odd == PromptFeatures(message_count=3)
    assert prompt_features({}) == PromptFeatures()


def test_decision_becomes_route_span_attributes() -> None:
    decision = _decision(mode="enforce")
    assert decision.span_attributes() == {
        semconv.AGENTMESH_ROUTE_DECISION_ID: decision.decision_id,
        semconv.AGENTMESH_ROUTE_POLICY: "pass_through",
        semconv.AGENTMESH_ROUTE_MODE: "enforce",
        semconv.AGENTMESH_ROUTE_REQUESTED_MODEL: "gpt-4o",
        semconv.AGENTMESH_ROUTE_CANDIDATES: ("gpt-4o", "gpt-4o-mini"),
        semconv.AGENTMESH_ROUTE_SCORES: (1.0, 0.0),
        semconv.AGENTMESH_ROUTE_CHOSEN: "gpt-4o",
        semconv.AGENTMESH_ROUTE_REASON: "requested model",
        semconv.AGENTMESH_ROUTE_FEATURES: (
            '{"message_count":0,"total_chars":0,"has_tools":false,"has_images":false,'
            '"wants_json":false}'
        ),
        semconv.AGENTMESH_ROUTE_TABLE_VERSION: 0,
    }
    assert decision.fallbacks == ("gpt-4o-mini",)


def test_decision_records_task_class_cluster_and_table_version_on_the_span() -> None:
    request = RouteRequest("openai", "gpt-4o", task_class="research")
    decision = RouteDecision.new(
        request, "utility", ("gpt-4o",), (1.0,), "gpt-4o", "best", cluster=7, table_version=12
    )
    attributes = decision.span_attributes()
    assert attributes[semconv.AGENTMESH_ROUTE_TASK_CLASS] == "research"
    assert attributes[semconv.AGENTMESH_ROUTE_TABLE_VERSION] == 12
    assert '"cluster":7' in str(attributes[semconv.AGENTMESH_ROUTE_FEATURES])
    record = json.loads(decision.to_json())
    assert (record["features"]["cluster"], record["table_version"]) == (7, 12)


def test_decision_log_line_keeps_the_cluster_inside_features_as_the_api_does() -> None:
    features = PromptFeatures(message_count=2, total_chars=812)
    request = RouteRequest("openai", "gpt-4o", task_class="qa", features=features)
    decision = RouteDecision.new(
        request, "utility", ("gpt-4o",), (1.0,), "gpt-4o", "best", cluster=3
    )
    record = json.loads(decision.to_json())
    assert "cluster" not in record
    # the collector's API and export give features as parsed from agentmesh.route.features
    api_features = json.loads(str(decision.span_attributes()[semconv.AGENTMESH_ROUTE_FEATURES]))
    assert record["features"] == api_features
    assert record["features"]["cluster"] == 3
    unclustered = json.loads(_decision().to_json())
    assert "cluster" not in unclustered["features"]


def test_decision_json_line_carries_the_full_context_and_no_content() -> None:
    features = prompt_features({"messages": [{"role": "user", "content": "secret prompt"}]})
    decision = _decision(task_class="research", features=features)
    line = decision.to_json()
    assert "\n" not in line
    assert "secret prompt" not in line
    record = json.loads(line)
    assert record == {
        "decision_id": decision.decision_id,
        "timestamp": decision.timestamp,
        "policy": "pass_through",
        "mode": "shadow",
        "requested_model": "gpt-4o",
        "candidates": ["gpt-4o", "gpt-4o-mini"],
        "scores": [1.0, 0.0],
        "chosen": "gpt-4o",
        "reason": "requested model",
        "task_class": "research",
        "features": {
            "message_count": 1,
            "total_chars": 13,
            "has_tools": False,
            "has_images": False,
            "wants_json": False,
        },
    }
    assert record["timestamp"] > 1.7e9


def test_scores_must_match_candidates() -> None:
    with pytest.raises(ValueError, match="2 candidates but 1 scores"):
        RouteDecision.new(RouteRequest("openai", "a"), "p", ("a", "b"), (1.0,), "a", "r")


def test_new_fills_every_field_like_the_constructor() -> None:
    features = PromptFeatures(2, 812, has_tools=True)
    request = RouteRequest("openai", "gpt-4o", task_class="triage", features=features)
    before = time.time()
    made = RouteDecision.new(
        request, "utility", ("a", "b"), (0.9, 0.1), "a", "why", cluster=7, table_version=3
    )
    expected = RouteDecision(
        made.decision_id, "utility", request.mode, "gpt-4o", ("a", "b"), (0.9, 0.1), "a",
        "why", "triage", features, made.timestamp, (), 7, 3,
    )  # fmt: skip
    assert made == expected
    assert repr(made) == repr(expected)  # every slot is set (repr reads them all)
    assert before <= made.timestamp <= time.time()
    with pytest.raises(AttributeError):
        made.chosen = "b"  # pyright: ignore[reportAttributeAccessIssue]
    assert hash(made) == hash(expected)


def test_decision_ids_are_unique_hex() -> None:
    ids = {new_decision_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def test_decision_log_keeps_the_most_recent_in_memory() -> None:
    log = DecisionLog(capacity=3)
    decisions = [_decision(f"m{i}") for i in range(5)]
    for decision in decisions:
        log.record(decision)
    assert log.decisions() == decisions[2:]
    assert [json.loads(line)["decision_id"] for line in log.lines()] == [
        d.decision_id for d in decisions[2:]
    ]
    assert log.path is None


def test_decision_log_appends_json_lines_to_a_file(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(capacity=2, path=path, flush_interval_s=60)
    decisions = [_decision(f"m{i}") for i in range(4)]
    for decision in decisions:
        log.record(decision)
    assert not path.exists()  # nothing written on the caller's thread
    log.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["decision_id"] for line in lines] == [d.decision_id for d in decisions]


def test_decision_log_writer_thread_flushes_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path=path, flush_interval_s=0.01)
    decision = _decision()
    log.record(decision)
    try:
        for _ in range(500):
            if path.exists() and path.read_text():
                break
            time.sleep(0.01)
        assert json.loads(path.read_text())["decision_id"] == decision.decision_id
    finally:
        log.close()


def test_decision_log_bounds_what_waits_for_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path=path, flush_interval_s=60, max_pending=2)
    decisions = [_decision(f"m{i}") for i in range(5)]
    for decision in decisions:
        log.record(decision)
    log.close()
    kept = [json.loads(line)["requested_model"] for line in path.read_text().splitlines()]
    assert kept == ["m3", "m4"]


def test_decision_log_survives_an_unwritable_file(tmp_path: Path) -> None:
    log = DecisionLog(path=tmp_path / "missing-dir" / "d.jsonl", flush_interval_s=60)
    log.record(_decision())
    log.close()  # logs a warning, raises nothing
    assert len(log.decisions()) == 1
