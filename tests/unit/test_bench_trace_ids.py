"""The soak's trace id patching (``bench/_throughput/trace_ids.py``) on a generated request.

Each replay of the stream must carry new trace ids, the same new id for every span of one
trace, and leave span ids, parent span ids and everything else untouched.
"""

from __future__ import annotations

import sys
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from agentmesh.collector.testing import SpanFactory, to_otlp_request

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from _throughput.stream import payloads  # noqa: E402
from _throughput.trace_ids import find_trace_ids, patch_trace_ids, replay_mask  # noqa: E402


def _spans(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest.FromString(body)
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def test_a_replay_changes_every_trace_id_consistently_and_nothing_else() -> None:
    body = payloads(600, seed=3)[0]
    before = _spans(body)
    sites = find_trace_ids(body)
    assert sites.count == len(before) == 512
    assert len(sites.groups) == len({span.trace_id for span in before}) > 1

    patched = patch_trace_ids(body, sites, replay=5)
    after = _spans(patched)

    assert len(patched) == len(body)
    assert len(after) == len(before)
    mapping: dict[bytes, bytes] = {}
    for old, new in zip(before, after, strict=True):
        assert new.trace_id != old.trace_id
        assert new.trace_id[8:] == old.trace_id[8:]
        assert mapping.setdefault(old.trace_id, new.trace_id) == new.trace_id
        assert (new.span_id, new.parent_span_id, new.name) == (
            old.span_id,
            old.parent_span_id,
            old.name,
        )
        cleared_old, cleared_new = Span(), Span()
        cleared_old.CopyFrom(old)
        cleared_new.CopyFrom(new)
        cleared_old.ClearField("trace_id")
        cleared_new.ClearField("trace_id")
        assert cleared_new == cleared_old
    assert len(set(mapping.values())) == len(mapping)


def test_replays_never_share_trace_ids() -> None:
    body = payloads(600, seed=3)[0]
    sites = find_trace_ids(body)
    seen: set[bytes] = set()
    for replay in range(1, 20):
        ids = {span.trace_id for span in _spans(patch_trace_ids(body, sites, replay))}
        assert not ids & seen
        seen |= ids
    assert patch_trace_ids(body, sites, 0) == body
    assert len({replay_mask(r) for r in range(1000)}) == 1000


def test_link_trace_ids_are_patched_with_their_spans() -> None:
    f = SpanFactory(trace_id="ab" * 16)
    root = f.workflow("w", run_id="r")
    request = to_otlp_request([root])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    link = span.links.add()
    link.trace_id = span.trace_id
    link.span_id = b"\x01" * 8
    body = request.SerializeToString()

    sites = find_trace_ids(body)
    patched = _spans(patch_trace_ids(body, sites, 2))[0]

    assert sites.count == 2
    assert patched.trace_id != span.trace_id
    assert patched.links[0].trace_id == patched.trace_id
    assert patched.links[0].span_id == b"\x01" * 8
