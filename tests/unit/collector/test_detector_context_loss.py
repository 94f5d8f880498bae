import pytest

from agentmesh.collector.detectors import ContextLossDetector
from agentmesh.collector.model import SpanRecord
from agentmesh.collector.testing import DetectorFeed, SpanFactory, cycle_of, handoff_received
from agentmesh.core import DetectionError


def _handoff(
    f: SpanFactory, root: SpanRecord, *, sent: str | None, received: str | None
) -> SpanRecord:
    span = f.agent(
        "writer",
        parent=root,
        run_id="r-4",
        handoff_from="researcher",
        handoff_kind="command",
        context_digest=sent,
        context_size=4096,
    )
    return span if received is None else handoff_received(span, received)


def test_a_received_digest_other_than_the_sent_one_fires_at_the_handoff_span() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r-4")
    researcher = f.agent("researcher", parent=root, run_id="r-4")
    lost = _handoff(f, root, sent="sha256:full", received="sha256:cut")
    detector = ContextLossDetector(clock=lambda: 7)
    (found,) = detector.observe(cycle_of([researcher, lost, root]))
    assert found.type == detector.name == "context_loss"
    assert found.severity == "error"
    assert found.span_ids == (lost.span_id,)
    assert found.agent == "writer"
    assert found.run_id == "r-4"
    assert found.detected_at_ns == 7
    assert found.explanation == (
        "context lost at the handoff researcher → writer in run r-4: sent sha256:full "
        "(4096 bytes), received sha256:cut"
    )
    assert found.details == {
        "source": "researcher",
        "target": "writer",
        "kind": "command",
        "sent_digest": "sha256:full",
        "received_digest": "sha256:cut",
        "sent_size": 4096,
        "checkpoint_id": None,
    }


@pytest.mark.parametrize(
    ("sent", "received"),
    [("sha256:a", "sha256:a"), ("sha256:a", None), (None, "sha256:b"), (None, None)],
)
def test_intact_or_unrecorded_handoffs_do_not_fire(sent: str | None, received: str | None) -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    span = _handoff(f, root, sent=sent, received=received)
    assert ContextLossDetector().observe(cycle_of([span, root])) == []


def test_each_handoff_is_reported_once_and_each_lossy_handoff_on_its_own() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    first = _handoff(f, root, sent="a", received="b")
    second = _handoff(f, root, sent="c", received="d")
    feed = DetectorFeed(ContextLossDetector())
    (one,) = feed([first])
    assert feed([first]) == []  # re-delivered
    (two,) = feed([second, root])
    assert one.id != two.id


def test_memory_of_reports_is_bounded() -> None:
    detector = ContextLossDetector(max_remembered=1)
    f = SpanFactory()
    root = f.workflow("w", run_id="r")
    first = _handoff(f, root, sent="a", received="b")
    second = _handoff(f, root, sent="c", received="d")
    feed = DetectorFeed(detector)
    (original,) = feed([first])
    assert len(feed([second])) == 1
    (again,) = feed([first])  # forgotten, so reported again: with the same id (stored once)
    assert again.id == original.id


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(DetectionError):
        ContextLossDetector(max_remembered=0)
