import random

import pytest
from _arrivals import timed

from agentmesh.collector.detectors import ErrorCascadeDetector
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import DetectorFeed, SpanFactory, cycle_of, failed
from agentmesh.core import DetectionError

SECOND = 1_000_000_000


def _cascade() -> tuple[list[SpanRecord], dict[str, SpanRecord]]:
    """researcher's search times out; then writer's LLM call fails; then the critic fails.

    Each agent lets its error through (its own span ends in error), which is what counts.

    One agent every 10 s; spans are listed in the order they end (children before parents).
    """
    f = SpanFactory()
    root = f.workflow("report", run_id="r-7")
    t = root.start_ns
    researcher = timed(f.agent("researcher", parent=root, run_id="r-7"), t, t + 10 * SECOND)
    search = timed(f.tool("search", parent=researcher), t + SECOND, t + 5 * SECOND)
    writer = timed(f.agent("writer", parent=root, run_id="r-7"), t + 10 * SECOND, t + 17 * SECOND)
    draft = timed(f.chat(parent=writer), t + 11 * SECOND, t + 15 * SECOND)
    critic = timed(f.agent("critic", parent=root, run_id="r-7"), t + 20 * SECOND, t + 30 * SECOND)
    late = timed(f.chat(parent=critic), t + 21 * SECOND, t + 29 * SECOND)
    spans = [
        failed(search, "TimeoutError"),
        failed(researcher, "TimeoutError"),
        failed(draft, "BadRequestError"),
        failed(writer, "BadRequestError"),
        late,
        failed(critic, "ValueError"),
        failed(timed(root, t, t + 31 * SECOND), "ValueError"),
    ]
    named = {"researcher": researcher, "writer": writer, "critic": critic}
    return spans, named


def test_errors_in_two_agents_one_after_the_other_are_a_cascade_reported_once() -> None:
    spans, named = _cascade()
    detector = ErrorCascadeDetector(clock=lambda: 9)
    feed = DetectorFeed(detector)
    assert feed(spans[:2]) == []  # one failing agent so far
    assert feed(spans[2:4]) == []  # the writer failed after the researcher: not yet settled
    (found,) = feed(spans[4:5])  # a span ending 14 s after the writer's error settles it
    assert found.type == detector.name == "error_cascade"
    assert found.severity == "error"
    assert found.agent == "researcher"
    assert found.run_id == "r-7"
    assert found.span_ids == (named["researcher"].span_id, named["writer"].span_id)
    assert found.detected_at_ns == 9
    assert found.explanation == (
        "errors spread across 2 agents in run r-7: researcher failed first (TimeoutError), "
        "then writer (BadRequestError) (bound 2 agents)"
    )
    assert found.details["agents"] == ["researcher", "writer"]
    assert feed(spans[5:]) == []  # the critic failing too changes nothing: once per run


def test_without_settling_the_cascade_is_reported_as_the_second_error_arrives() -> None:
    spans, _ = _cascade()
    feed = DetectorFeed(ErrorCascadeDetector(settle_seconds=0))
    assert feed(spans[:2]) == []
    assert len(feed(spans[2:4])) == 1


def test_a_completed_run_is_judged_whole() -> None:
    spans, _ = _cascade()
    feed = DetectorFeed(ErrorCascadeDetector())
    assert feed(spans[:4]) == []
    (found,) = feed([spans[-1]])  # the root: the run is complete
    assert found.details["agents"] == ["researcher", "writer"]


def test_the_bound_is_the_number_of_agents() -> None:
    spans, named = _cascade()
    (found,) = ErrorCascadeDetector(min_agents=3).observe(cycle_of(spans))
    assert found.details["agents"] == ["researcher", "writer", "critic"]
    assert found.span_ids[-1] == named["critic"].span_id
    assert ErrorCascadeDetector(min_agents=4).observe(cycle_of(spans)) == []


def test_one_failing_agent_whose_error_is_handled_is_not_a_cascade() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    researcher = f.agent("researcher", parent=root)
    flaky = failed(f.chat(parent=researcher), "RateLimitError", http_status=429)
    retry = f.chat(parent=researcher)
    tool = failed(f.tool("search", parent=researcher), "TimeoutError")
    writer = f.agent("writer", parent=root)
    again = f.agent("researcher", parent=root)  # handed back: the same agent fails again
    again_chat = failed(f.chat(parent=again), "TimeoutError")
    spans = [flaky, retry, tool, researcher, f.chat(parent=writer), writer, again_chat, again]
    assert ErrorCascadeDetector().observe(cycle_of([*spans, root])) == []


def test_an_error_propagating_up_to_the_enclosing_agent_is_not_a_cascade() -> None:
    # The supervisor's span contains the worker's and ends in error because the worker raised.
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    t = root.start_ns
    supervisor = timed(f.agent("supervisor", parent=root), t + 1, t + 9 * SECOND)
    worker = timed(f.agent("worker", parent=supervisor), t + 2, t + 8 * SECOND)
    boom = timed(f.chat(parent=worker), t + 3, t + 7 * SECOND)
    spans = [failed(boom, "APIError"), failed(worker, "APIError"), failed(supervisor, "APIError")]
    ended = failed(timed(root, t, t + 10 * SECOND))
    assert ErrorCascadeDetector().observe(cycle_of([*spans, ended])) == []


def test_parallel_branches_failing_together_are_not_a_cascade() -> None:
    # Two branches started before either failed: no handoff carried the failure.
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    start = root.start_ns + SECOND
    one = failed(f.agent("one", parent=root, start_ns=start), "TimeoutError")
    two = failed(f.agent("two", parent=root, start_ns=start + 1), "TimeoutError")
    assert ErrorCascadeDetector().observe(cycle_of([one, two, root])) == []


def test_errors_an_agent_handles_do_not_make_it_fail() -> None:
    # Both agents meet errors inside (a 429, a failing tool) but finish well.
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    first = f.agent("first", parent=root)
    second = f.agent("second", parent=root)
    spans = [
        failed(f.chat(parent=first), "RateLimitError", http_status=429),
        first,
        failed(f.tool("fetch", parent=second), "HTTPError"),
        second,
        root,
    ]
    assert ErrorCascadeDetector(settle_seconds=0).observe(cycle_of(spans)) == []


def test_an_agent_fails_when_its_own_span_ends_in_error() -> None:
    # The second agent's tool failed inside; the cascade is known when the agent's span, which
    # let the error through, arrives.
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    first = failed(f.agent("first", parent=root), "TimeoutError")
    second = f.agent("second", parent=root)
    tool = f.tool("summarise", parent=second)
    inner = failed(f.chat(parent=tool), "BadRequestError")
    feed = DetectorFeed(ErrorCascadeDetector(settle_seconds=0))
    assert feed([first, f.marker(second), inner, failed(tool, "BadRequestError")]) == []
    (found,) = feed([failed(second, "BadRequestError")])
    assert found.details["agents"] == ["first", "second"]
    assert found.span_ids == (first.span_id, second.span_id)


def test_errors_outside_any_agent_are_ignored() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    a = f.agent("a", parent=root)
    outside = failed(f.chat(parent=root), "TimeoutError")
    later = failed(f.chat(parent=f.agent("b", parent=root)), "TimeoutError")
    assert ErrorCascadeDetector().observe(cycle_of([outside, a, later, failed(root)])) == []


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_the_finding_does_not_depend_on_arrival_order(seed: int) -> None:
    spans, named = _cascade()
    order = spans[:-1]
    random.Random(seed).shuffle(order)
    feed = DetectorFeed(ErrorCascadeDetector(min_agents=3))
    found = [d for span in [*order, spans[-1]] for d in feed([span])]
    (in_order,) = ErrorCascadeDetector(min_agents=3).observe(cycle_of(spans))
    assert len(found) == 1
    assert found[0].id == in_order.id
    assert found[0].span_ids == in_order.span_ids
    assert found[0].span_ids[0] == named["researcher"].span_id


def test_finished_and_idle_runs_are_forgotten_and_capped() -> None:
    detector = ErrorCascadeDetector(max_traces=3)
    feed = DetectorFeed(detector)
    spans, _ = _cascade()
    feed(spans[:-1])
    assert detector.runs_held == 1
    feed([spans[-1]])  # root: the run is complete
    feed.tick(advance_ns=31 * SECOND)
    assert detector.runs_held == 0
    for _ in range(10):
        feed(_cascade()[0][:2])
    assert detector.runs_held == 3
    feed.tick(advance_ns=601 * SECOND)
    assert detector.runs_held == 0


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(DetectionError):
        ErrorCascadeDetector(min_agents=1)
    with pytest.raises(DetectionError):
        ErrorCascadeDetector(max_spans_per_run=0)
    with pytest.raises(DetectionError):
        ErrorCascadeDetector(settle_seconds=-1)
