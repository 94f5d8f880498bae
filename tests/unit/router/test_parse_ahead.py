"""Predictors parsed ahead of use, off the application's hot path."""

from __future__ import annotations

import weakref

from structlog.testing import capture_logs

from agentmesh.router import RouteRequest, RouteTable, UtilityPolicy
from agentmesh.router.learned import Predictor, QualityModel
from agentmesh.router.learned.parse_ahead import parse, parse_ahead, parsed, retire


def _learned() -> dict[str, object]:
    quality = QualityModel()
    for _ in range(10):
        quality.update("chat", 0, "small", 0.9, cost_usd=0.0001)
    return Predictor(quality).to_dict()


def test_a_table_parsed_ahead_hands_every_reader_the_same_predictor() -> None:
    table = RouteTable(version=1, predictor=_learned())
    assert parsed(table) is None
    parse_ahead(table)
    ready = parsed(table)
    assert ready is not None
    assert ready.predictor is not None
    assert ready.error is None
    parse_ahead(table)  # once is enough
    assert parsed(table) is ready
    policy = UtilityPolicy(lambda: table, candidates={"*": ("small",)}, exploration=0.0)
    assert policy.predictor is ready.predictor
    assert policy.decide(RouteRequest("openrouter", "small", task_class="chat")).policy == (
        "utility"
    )
    # The same data in another table object is another predictor (one may learn in place).
    twin = RouteTable(version=1, predictor=table.predictor)
    assert parsed(twin) is None
    other = UtilityPolicy(lambda: twin, candidates={"*": ("small",)})
    assert other.predictor is not None
    assert other.predictor is not ready.predictor


def test_only_the_last_few_tables_are_held() -> None:
    tables = [RouteTable(version=v, predictor=_learned()) for v in range(6)]
    for table in tables:
        parse_ahead(table)
    assert parsed(tables[0]) is None  # dropped: nothing grows with the tables seen
    assert parsed(tables[-1]) is not None
    no_predictor = RouteTable(version=9)
    parse_ahead(no_predictor)
    assert parsed(no_predictor) is None
    assert parse(no_predictor).predictor is None


def test_a_decision_leaves_freeing_the_previous_predictor_to_the_next_parse() -> None:
    parse_ahead(RouteTable(version=0))  # frees what earlier tests retired
    tables = [RouteTable(version=1, predictor=_learned())]
    policy = UtilityPolicy(lambda: tables[-1], candidates={"*": ("small",)}, exploration=0.0)
    request = RouteRequest("openrouter", "small", task_class="chat")
    policy.decide(request)  # the policy parses this table itself: nothing else holds it
    first = policy.predictor
    assert first is not None
    gone = weakref.ref(first)
    del first
    tables.append(RouteTable(version=2, predictor=_learned()))
    parse_ahead(tables[-1])
    del tables[0]
    assert policy.decide(request).table_version == 2
    assert gone() is not None  # the decision only handed it over
    parse_ahead(RouteTable(version=3, predictor=_learned()))
    assert gone() is None  # the next table's parse (the client's thread) freed it


def test_what_is_retired_stays_bounded_when_nobody_parses_ahead() -> None:
    parse_ahead(RouteTable(version=0))
    first = Predictor(QualityModel())
    gone = weakref.ref(first)
    retire(first)
    del first
    for _ in range(3):
        retire(object())
    assert gone() is not None
    retire(object())  # the fifth: the oldest is freed where it is retired
    assert gone() is None


def test_a_predictor_that_breaks_the_parser_is_an_error_not_an_exception() -> None:
    table = RouteTable(
        version=4, predictor={"format": "agentmesh.cluster-quality/1", "quality": {}}
    )
    table.predictor["quality"] = _Exploding()  # pyright: ignore[reportIndexIssue]
    result = parse(table)
    assert result.predictor is None
    assert (result.error or "").startswith("RuntimeError")


class _Exploding(dict[str, object]):
    def get(self, key: str, default: object = None) -> object:
        raise RuntimeError("boom")

    def __getitem__(self, key: str) -> object:
        raise RuntimeError("boom")


def test_an_invalid_predictor_is_parsed_ahead_into_its_error_and_logged_by_the_policy() -> None:
    table = RouteTable(version=3, predictor={"format": "other"})
    parse_ahead(table)
    ready = parsed(table)
    assert ready is not None
    assert ready.predictor is None
    assert "format" in (ready.error or "")
    with capture_logs() as logs:
        policy = UtilityPolicy(lambda: table, candidates={"*": ("small",)})
        assert policy.predictor is None
        assert policy.predictor is None  # logged once per table's predictor
    warnings = [e for e in logs if e["event"] == "router.predictor_invalid"]
    assert len(warnings) == 1
    assert warnings[0]["version"] == 3
