"""Error cascades and retried steps: a failure the app retried with success does not count.

An app that retries a failed step (plain code calling ``agent()`` again, a framework's retry
policy) makes one failed agent span, then a successful one of the same agent. The run went on
from the retry, so the failure cannot be where a later agent's failure came from; a real
cascade (nobody retried the first failure) is still reported as soon as it is seen.
"""

import random

import pytest
from _arrivals import SECOND, timed

from agentmesh.collector.detectors import ErrorCascadeDetector
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import DetectorFeed, SpanFactory, cycle_of, failed


def _retried_steps(run_id: str = "r-retry") -> list[SpanRecord]:
    """fetcher, analyst, writer: each fails once (TimeoutError), is retried, and succeeds.

    As ``/tmp/qa_detect/plain_retry.py`` runs: one second per attempt, 0.3 s between attempts;
    spans listed in the order they end (the root last).
    """
    f = SpanFactory()
    root = f.workflow("retry-steps", run_id=run_id)
    t = root.start_ns
    spans: list[SpanRecord] = []
    for name in ("fetcher", "analyst", "writer"):
        first = timed(f.agent(name, parent=root, run_id=run_id), t, t + SECOND)
        spans.append(failed(first, "TimeoutError"))
        t += SECOND + 3 * SECOND // 10
        retry = timed(f.agent(name, parent=root, run_id=run_id), t, t + SECOND)
        spans += [timed(f.chat(parent=retry), t + 1, t + SECOND - 1), retry]
        t += SECOND + 3 * SECOND // 10
    spans.append(timed(root, root.start_ns, t))
    return spans


@pytest.mark.parametrize("settle_seconds", [0.0, 5.0])
def test_steps_that_fail_once_and_succeed_on_retry_are_no_cascade(settle_seconds: float) -> None:
    feed = DetectorFeed(ErrorCascadeDetector(settle_seconds=settle_seconds))
    found = [d for span in _retried_steps() for d in feed([span])]  # one span per cycle
    assert found == []


def test_retried_steps_judged_as_a_whole_are_no_cascade() -> None:
    assert ErrorCascadeDetector().observe(cycle_of(_retried_steps())) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_retried_steps_are_no_cascade_in_any_arrival_order(seed: int) -> None:
    spans = _retried_steps()
    body = spans[:-1]
    random.Random(seed).shuffle(body)
    feed = DetectorFeed(ErrorCascadeDetector(settle_seconds=5.0))
    assert [d for span in [*body, spans[-1]] for d in feed([span])] == []


def _cascade_then_retry() -> tuple[list[SpanRecord], dict[str, SpanRecord]]:
    """fetcher fails (not retried at once); analyst, handed work after it, fails; later the app
    retries both and they succeed. Spans in the order they end."""
    f = SpanFactory()
    root = f.workflow("w", run_id="r-real")
    t = root.start_ns
    fetcher = failed(timed(f.agent("fetcher", parent=root), t, t + SECOND), "TimeoutError")
    analyst = failed(
        timed(f.agent("analyst", parent=root), t + 2 * SECOND, t + 3 * SECOND), "ValueError"
    )
    fetcher_again = timed(f.agent("fetcher", parent=root), t + 4 * SECOND, t + 5 * SECOND)
    analyst_again = timed(f.agent("analyst", parent=root), t + 6 * SECOND, t + 7 * SECOND)
    spans = [fetcher, analyst, fetcher_again, analyst_again, timed(root, t, t + 8 * SECOND)]
    return spans, {"fetcher": fetcher, "analyst": analyst}


def test_a_real_cascade_is_reported_live_even_when_its_steps_are_retried_later() -> None:
    spans, named = _cascade_then_retry()
    feed = DetectorFeed(ErrorCascadeDetector(settle_seconds=0))
    assert feed(spans[:1]) == []
    (found,) = feed(spans[1:2])  # the analyst's failure: the fetcher had not been retried
    assert found.span_ids == (named["fetcher"].span_id, named["analyst"].span_id)
    assert found.details["agents"] == ["fetcher", "analyst"]
    assert feed(spans[2:]) == []  # once per run


def test_a_real_cascade_is_found_when_the_run_is_judged_whole() -> None:
    spans, named = _cascade_then_retry()
    (found,) = ErrorCascadeDetector().observe(cycle_of(spans))  # the retries came after
    assert found.agent == "fetcher"
    assert found.span_ids == (named["fetcher"].span_id, named["analyst"].span_id)


def test_after_a_retried_failure_the_next_unretried_failures_can_still_cascade() -> None:
    # fetcher fails and is retried well; then analyst fails, and writer (handed work after
    # it) fails: the cascade starts at the analyst.
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    t = root.start_ns
    spans = [
        failed(timed(f.agent("fetcher", parent=root), t, t + SECOND), "TimeoutError"),
        timed(f.agent("fetcher", parent=root), t + 2 * SECOND, t + 3 * SECOND),
        failed(timed(f.agent("analyst", parent=root), t + 4 * SECOND, t + 5 * SECOND), "KeyError"),
        failed(timed(f.agent("writer", parent=root), t + 6 * SECOND, t + 7 * SECOND), "ValueError"),
    ]
    feed = DetectorFeed(ErrorCascadeDetector(settle_seconds=0))
    assert feed(spans[:3]) == []
    (found,) = feed(spans[3:])
    assert found.agent == "analyst"
    assert found.details["agents"] == ["analyst", "writer"]
    assert found.explanation.startswith(
        f"errors spread across 2 agents in run {found.run_id}: analyst failed first (KeyError)"
    )


def test_a_retry_that_arrives_before_the_failure_it_retried_still_counts() -> None:
    # Two exporters: the successful retry's span arrives first.
    spans = _retried_steps()
    fetcher_failed, _chat, fetcher_retry = spans[:3]
    rest = spans[3:]
    feed = DetectorFeed(ErrorCascadeDetector(settle_seconds=5.0))
    found = [d for batch in ([fetcher_retry], [fetcher_failed], rest) for d in feed(batch)]
    assert found == []


def test_a_retry_that_failed_again_does_not_clear_the_failure() -> None:
    # fetcher fails twice (its retry failed too); analyst, handed work after, fails: a cascade.
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    t = root.start_ns
    spans = [
        failed(timed(f.agent("fetcher", parent=root), t, t + SECOND), "TimeoutError"),
        failed(timed(f.agent("fetcher", parent=root), t + 2 * SECOND, t + 3 * SECOND)),
        failed(timed(f.agent("analyst", parent=root), t + 4 * SECOND, t + 5 * SECOND)),
    ]
    (found,) = ErrorCascadeDetector(settle_seconds=0).observe(cycle_of(spans))
    assert found.details["agents"] == ["fetcher", "analyst"]


def test_the_steps_a_collectors_stop_ended_are_no_cascade() -> None:
    # a run the collector stopped: the step that was running, then the next one the app tried,
    # each raises RunStoppedError at its model call
    f = SpanFactory()
    root = f.workflow("w", run_id="r-stopped")
    t = root.start_ns
    first = timed(f.agent("researcher", parent=root), t + SECOND, t + 2 * SECOND)
    then = timed(f.agent("writer", parent=root), t + 3 * SECOND, t + 4 * SECOND)
    stopped = [failed(first, "RunStoppedError"), failed(then, "RunStoppedError")]
    broken = failed(timed(root, t, t + 5 * SECOND), "RunStoppedError")
    assert ErrorCascadeDetector().observe(cycle_of([*stopped, broken])) == []
    # the same failures, of another kind, are one
    real = [failed(first, "APIConnectionError"), failed(then, "APIConnectionError")]
    found = ErrorCascadeDetector().observe(cycle_of([*real, failed(broken, "APIConnectionError")]))
    assert [d.type for d in found] == ["error_cascade"]
