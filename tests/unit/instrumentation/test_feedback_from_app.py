"""Feedback from the app without a collector: scores are checked, a call to score is needed,
and a collector that is away costs the app nothing (the delivery itself is tested against a
real collector in ``tests/integration/test_feedback_reaches_collector.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from agentmesh.core import ConfigError
from agentmesh.instrumentation import feedback
from agentmesh.instrumentation.feedback import RouteRef, last_route, send_feedback


@pytest.fixture(autouse=True)
def _no_route() -> Iterator[None]:
    token = feedback._LAST.set(None)  # pyright: ignore[reportPrivateUsage] - a clean context
    yield
    feedback._LAST.reset(token)  # pyright: ignore[reportPrivateUsage]


def test_bad_scores_are_refused_and_nothing_to_score_is_said() -> None:
    for score in (1.5, -0.1, float("nan"), True, "1"):
        with pytest.raises(ConfigError, match="a feedback score is a number from 0 to 1"):
            send_feedback(score)  # pyright: ignore[reportArgumentType]
    assert last_route() is None
    with capture_logs() as logs:
        assert not send_feedback(1.0)  # no routed call in this context
    assert any("no routed call in this context" in e["event"] for e in logs)


def test_an_unreachable_collector_costs_the_app_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTMESH_CONTROL_URL", "http://127.0.0.1:9")
    route = RouteRef("d-1", "ab" * 16, "cd" * 8, "gpt-4o")
    started = time.perf_counter()
    assert send_feedback(0.5, route=route)  # queued; the sender thread does the waiting
    assert time.perf_counter() - started < 0.5
