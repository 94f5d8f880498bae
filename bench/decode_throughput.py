"""How fast the collector turns OTLP export requests into span records.

Builds realistic multi-agent batches (a supervisor workflow: agent spans with handoff
attributes, chat spans with GenAI attributes; 512 spans per request, as the SDK's batch
processor sends them), serialises them, then measures in one run, on one core:

- ``parse``: protobuf parsing alone (the ceiling);
- ``agentmesh``: parsing plus :func:`agentmesh.collector.receiver.decode.decode_request`;
- ``message_to_dict``: parsing plus protobuf's ``json_format.MessageToDict``, the generic way a
  Python receiver turns a request into Python values (the peer).

Reference data: none (generated with a fixed seed).
Run: ``uv run python bench/decode_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentmesh.collector.model import SpanRecord
from agentmesh.collector.receiver.decode import decode_request
from agentmesh.collector.testing import SpanFactory, to_otlp_request

SPANS_PER_REQUEST = 512


def _run_spans(rng: random.Random) -> list[SpanRecord]:
    f = SpanFactory(service_name="bench-app")
    root = f.workflow("supervisor_graph", run_id=f"run-{rng.randrange(1 << 30)}")
    spans = [root]
    previous = None
    for _ in range(rng.randint(3, 9)):
        agent_name = rng.choice(["supervisor", "researcher", "writer", "critic"])
        agent = f.agent(agent_name, parent=root, handoff_from=previous)
        spans.append(agent)
        for _ in range(rng.randint(1, 3)):
            spans.append(
                f.chat(
                    parent=agent,
                    model=rng.choice(["gpt-4o-mini", "claude-haiku-4-5", "gpt-4.1"]),
                    input_tokens=rng.randint(50, 4000),
                    output_tokens=rng.randint(10, 800),
                    cost_usd=rng.random() / 100,
                )
            )
        previous = agent_name
    return spans


def _payloads(total_spans: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    payloads: list[bytes] = []
    batch: list[SpanRecord] = []
    produced = 0
    while produced < total_spans:
        for span in _run_spans(rng):
            batch.append(span)
            produced += 1
            if len(batch) == SPANS_PER_REQUEST:
                payloads.append(to_otlp_request(batch).SerializeToString())
                batch = []
    if batch:
        payloads.append(to_otlp_request(batch).SerializeToString())
    return payloads


def _measure(fn: Callable[[bytes], int], payloads: list[bytes], repeats: int) -> list[float]:
    rates: list[float] = []
    for _ in range(repeats):
        started = time.perf_counter()
        spans = sum(fn(p) for p in payloads)
        rates.append(spans / (time.perf_counter() - started))
    return rates


def _parse(payload: bytes) -> int:
    request = ExportTraceServiceRequest.FromString(payload)
    return sum(len(s.spans) for rs in request.resource_spans for s in rs.scope_spans)


def _ours(payload: bytes) -> int:
    return len(decode_request(ExportTraceServiceRequest.FromString(payload)).spans)


def _message_to_dict(payload: bytes) -> int:
    data = json_format.MessageToDict(ExportTraceServiceRequest.FromString(payload))
    return sum(
        len(s.get("spans", []))
        for rs in data.get("resourceSpans", [])
        for s in rs.get("scopeSpans", [])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    payloads = _payloads(args.spans, args.seed)
    size = sum(len(p) for p in payloads)
    results: dict[str, list[float]] = {}
    # Interleave the contenders repeat by repeat so machine noise hits them alike.
    for _ in range(args.repeats):
        for name, fn in (
            ("parse", _parse),
            ("agentmesh", _ours),
            ("message_to_dict", _message_to_dict),
        ):
            results.setdefault(name, []).extend(_measure(fn, payloads, 1))

    print(f"{args.spans} spans in {len(payloads)} requests, {size / 1e6:.1f} MB of protobuf")
    print(f"{'decoder':<18}{'median spans/s':>16}{'min':>12}{'max':>12}")
    for name, rates in results.items():
        print(
            f"{name:<18}{statistics.median(rates):>16,.0f}{min(rates):>12,.0f}{max(rates):>12,.0f}"
        )
    ratio = statistics.median(results["agentmesh"]) / statistics.median(results["message_to_dict"])
    print(f"agentmesh / message_to_dict: {ratio:.2f}x")
    print(
        json.dumps(
            {
                "benchmark": "decode_throughput",
                "spans": args.spans,
                "requests": len(payloads),
                "repeats": args.repeats,
                "parse_spans_per_s": round(statistics.median(results["parse"])),
                "agentmesh_spans_per_s": round(statistics.median(results["agentmesh"])),
                "message_to_dict_spans_per_s": round(statistics.median(results["message_to_dict"])),
                "agentmesh_vs_message_to_dict": round(ratio, 3),
                "agentmesh_spread": round(
                    (max(results["agentmesh"]) - min(results["agentmesh"]))
                    / statistics.median(results["agentmesh"]),
                    3,
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
