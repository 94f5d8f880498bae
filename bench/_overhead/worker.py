"""The measuring process, run inside one contender's venv: ``python -m _overhead.worker``.

An *instrumented* worker applies one contender and measures both sides in the same process:
bare calls go through clients built before instrumenting, with the SDK's original attributes
switched back in (:mod:`_overhead.toggle`), and instrumented calls through clients built after,
with the contender's wrappers in place; blocks of each alternate. A *bare* worker (the SDK with
an OpenTelemetry SDK tracer provider and no instrumentation) serves the duplicate-span probe.
Both serve canned answers from an ``httpx.MockTransport`` (``httpx2`` under ``openai`` 3.x), so
no socket is opened.

Protocol: the worker prints one JSON line describing itself (with the attributes the contender
patched), then answers each JSON line read on stdin (``{"calls": N, "stream": bool, "warmup": W,
"block": B, "bare_first": bool}``) with one JSON line of results. The protocol uses the
process's original stdout; anything a contender prints goes to stderr. With ``--profile N`` it
instead runs N calls of each kind under cProfile and prints the stats.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import importlib
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any, TextIO, cast

from _overhead import canned, toggle

STARTUP_WARMUP = 30
# Contenders applied as OpenTelemetry instrumentors: ``module:class``.
_INSTRUMENTORS = {
    "agentmesh": "agentmesh.instrumentation.openai:OpenAIInstrumentor",
    "openllmetry": "opentelemetry.instrumentation.openai:OpenAIInstrumentor",
    "openinference": "openinference.instrumentation.openai:OpenAIInstrumentor",
    "otel_genai": "opentelemetry.instrumentation.genai.openai:OpenAIInstrumentor",
}
_PEER_DISTS = {
    "agentmesh": "agentmesh-instrumentation",
    "openllmetry": "opentelemetry-instrumentation-openai",
    "openinference": "openinference-instrumentation-openai",
    "openlit": "openlit",
    "otel_genai": "opentelemetry-instrumentation-genai-openai",
}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def _http_module() -> Any:
    """Return the HTTP library the installed ``openai`` builds clients on."""
    import openai

    if int(openai.__version__.split(".")[0]) >= 3:
        import httpx2

        return httpx2
    import httpx

    return httpx


def _openlit_pricing() -> str:
    """Write a local pricing file so OpenLIT prices calls without fetching its catalog."""
    price = {"promptPrice": 0.00015, "completionPrice": 0.0006}
    pricing = {"chat": {canned.MODEL: price, canned.RESPONSE_MODEL: price}}
    handle, path = tempfile.mkstemp(prefix="openlit-pricing-", suffix=".json")
    with os.fdopen(handle, "w") as out:
        json.dump(pricing, out)
    return path


def instrument(peer: str, tracer_provider: Any) -> None:
    """Apply one contender's OpenAI instrumentation with its default settings.

    Args:
        peer: Contender name (see ``peers.PEERS``).
        tracer_provider: The SDK provider every contender exports through.
    """
    if peer in _INSTRUMENTORS:
        module, _, name = _INSTRUMENTORS[peer].partition(":")
        instrumentor: Any = getattr(importlib.import_module(module), name)()
        instrumentor.instrument(tracer_provider=tracer_provider)
    elif peer == "openlit":
        openlit: Any = importlib.import_module("openlit")
        known: Any = importlib.import_module("openlit._instrumentors").MODULE_NAME_MAP

        # OpenLIT reuses the global SDK provider set by the caller. Only its OpenAI
        # instrumentation is kept (it would also add httpx/requests spans), and its metrics
        # and events are off: their default exporters print to the console.
        openlit.init(
            disabled_instrumentors=[str(name) for name in known if name != "openai"],
            disable_metrics=True,
            disable_events=True,
            pricing_json=_openlit_pricing(),
        )
    else:
        raise ValueError(f"unknown contender {peer!r}")


class Session:
    """Clients, a tracer provider and an in-memory exporter, optionally instrumented.

    An instrumented session keeps two pairs of clients and a :class:`~_overhead.toggle.Toggle`:
    the bare clients were built before the contender instrumented (so whatever it does when a
    client is created does not apply to them) and the toggle puts back the SDK's own attributes
    while they are used. Bare and instrumented calls thus run in one process, interleaved.

    Args:
        peer: Contender name.
        instrumented: Whether to apply the contender's instrumentation.
    """

    def __init__(self, peer: str, instrumented: bool) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        self.peer = peer
        self.instrumented = instrumented
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        trace.set_tracer_provider(self.tracer_provider)
        self._messages = [dict(m) for m in canned.MESSAGES]
        self._bare = self._clients()
        self._clients_now = self._bare
        self.toggle: toggle.Toggle | None = None
        if instrumented:
            for _ in range(STARTUP_WARMUP):  # lazy imports and caches, before the snapshot
                self.plain_call()
                self.stream_call()
            before = toggle.snapshot()
            instrument(peer, self.tracer_provider)
            self.toggle = toggle.Toggle(before, toggle.snapshot())
            self._instrumented = self._clients()
            self._clients_now = self._instrumented

    @staticmethod
    def _clients() -> tuple[Any, Any]:
        import openai

        http = _http_module()
        plain, streamed = canned.completion_body(), canned.stream_body()
        json_headers = {"content-type": "application/json"}
        sse_headers = {"content-type": "text/event-stream"}

        def _plain(request: Any) -> Any:
            return http.Response(200, content=plain, headers=json_headers)

        def _streamed(request: Any) -> Any:
            return http.Response(200, content=streamed, headers=sse_headers)

        def _client(handler: Callable[[Any], Any]) -> Any:
            return openai.OpenAI(
                api_key="sk-bench",
                max_retries=0,
                http_client=http.Client(transport=http.MockTransport(handler)),
            )

        return _client(_plain), _client(_streamed)

    def use(self, instrumented: bool) -> None:
        """Make the next calls bare or instrumented (an instrumented session only)."""
        if self.toggle is None:
            raise RuntimeError("a bare session has nothing to switch")
        self.toggle.set(instrumented)
        self._clients_now = self._instrumented if instrumented else self._bare

    def describe(self) -> dict[str, object]:
        """Return what this process runs: versions, mode and the attributes patched."""
        return {
            "peer": self.peer,
            "instrumented": self.instrumented,
            "version": _version(_PEER_DISTS.get(self.peer, self.peer)),
            "openai": _version("openai"),
            "opentelemetry_sdk": _version("opentelemetry-sdk"),
            "python": sys.version.split()[0],
            "patched": self.toggle.labels() if self.toggle is not None else [],
        }

    def plain_call(self) -> None:
        """One non-streamed ``chat.completions.create``."""
        self._clients_now[0].chat.completions.create(
            model=canned.MODEL, messages=self._messages, temperature=0.2, max_tokens=64
        )

    def stream_call(self) -> None:
        """One streamed ``chat.completions.create`` with usage, read to the end."""
        stream = self._clients_now[1].chat.completions.create(
            model=canned.MODEL,
            messages=self._messages,
            temperature=0.2,
            max_tokens=64,
            stream=True,
            stream_options={"include_usage": True},
        )
        for _chunk in stream:
            pass

    def run_batch(self, calls: int, stream: bool, warmup: int) -> dict[str, object]:
        """Time ``calls`` calls one by one after ``warmup`` untimed ones (current mode).

        Args:
            calls: Timed calls.
            stream: Streamed calls rather than plain ones.
            warmup: Untimed calls first.

        Returns:
            Median and mean per-call nanoseconds, spans per timed call, span names seen.
        """
        times, spans = self._timed(self.stream_call if stream else self.plain_call, calls, warmup)
        return {
            "median_ns": statistics.median(times),
            "mean_ns": statistics.fmean(times),
            "spans_per_call": len(spans) / calls,
            "span_names": sorted({span.name for span in spans}),
        }

    def _timed(
        self, call: Callable[[], None], calls: int, warmup: int
    ) -> tuple[list[int], list[Any]]:
        for _ in range(warmup):
            call()
        self.exporter.clear()
        clock = time.perf_counter_ns
        times: list[int] = []
        for _ in range(calls):
            started = clock()
            call()
            times.append(clock() - started)
        spans = list(self.exporter.get_finished_spans())
        self.exporter.clear()
        return times, spans

    def run_paired(
        self, calls: int, stream: bool, warmup: int, block: int, bare_first: bool
    ) -> dict[str, object]:
        """Time ``calls`` bare and ``calls`` instrumented calls, alternating in blocks.

        Blocks of ``block`` calls alternate bare, instrumented, instrumented, bare, … (or the
        mirror image), so slow phases of the machine fall on both alike. One untimed call follows
        each switch (a switch invalidates the interpreter's attribute caches).

        Args:
            calls: Timed calls of each kind.
            stream: Streamed calls rather than plain ones.
            warmup: Untimed calls of each kind first.
            block: Calls per block.
            bare_first: Whether the pattern starts with a bare block.

        Returns:
            Bare and instrumented median per-call nanoseconds, each pair of adjacent blocks'
            (instrumented, bare) medians, spans per call of each kind and the instrumented span
            names.
        """
        call = self.stream_call if stream else self.plain_call
        times: dict[bool, list[int]] = {False: [], True: []}
        spans: dict[bool, list[Any]] = {False: [], True: []}
        for instrumented in (False, True):
            self.use(instrumented)
            self._timed(call, 0, warmup)
        # Consecutive blocks (0-1, 2-3, ...) always hold one of each kind: a pair's two medians
        # are one sample of the overhead, taken within ~2 block lengths.
        pairs: list[tuple[float, float]] = []
        pending: dict[bool, float] = {}
        index = 0
        while len(times[True]) < calls or len(times[False]) < calls:
            instrumented = (index % 4 in (1, 2)) == bare_first
            index += 1
            size = min(block, calls - len(times[instrumented]))
            if size <= 0:
                continue
            self.use(instrumented)
            got, seen = self._timed(call, size, 1)
            times[instrumented] += got
            spans[instrumented] += seen
            pending[instrumented] = statistics.median(got)
            if len(pending) == 2:
                pairs.append((pending[True], pending[False]))
                pending.clear()
        self.use(True)
        return {
            "bare_median_ns": statistics.median(times[False]),
            "median_ns": statistics.median(times[True]),
            "pairs_ns": pairs,
            "spans_per_call": len(spans[True]) / calls,
            "bare_spans_per_call": len(spans[False]) / calls,
            "span_names": sorted({span.name for span in spans[True]}),
        }


def serve(session: Session, requests: TextIO, out: TextIO) -> None:
    """Answer batch requests until stdin closes.

    Args:
        session: The measuring session.
        requests: Where JSON requests arrive, one a line.
        out: Where JSON answers go, one a line.
    """
    out.write(json.dumps(session.describe()) + "\n")
    out.flush()
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        result = session.run_paired(
            int(request["calls"]),
            bool(request["stream"]),
            int(request.get("warmup", 0)),
            int(request.get("block", 25)),
            bool(request.get("bare_first", True)),
        )
        out.write(json.dumps(result) + "\n")
        out.flush()


_PROFILED = ("/agentmesh/", "/opentelemetry/", "/wrapt/")


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/src/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def profile(session: Session, calls: int, out: TextIO, limit: int = 25) -> None:
    """Run ``calls`` plain and ``calls`` streamed calls under cProfile and print the stats.

    Two tables restricted to the instrumentation's and OpenTelemetry's functions (the SDK's and
    httpx's are the bare call): by own time, then by cumulative time, in microseconds per call
    (one call = one plain plus one streamed; cProfile inflates every figure, compare rows).

    Args:
        session: An instrumented session.
        calls: Calls of each kind.
        out: Where the report goes.
        limit: Rows per table.
    """
    for _ in range(50):
        session.plain_call()
        session.stream_call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        session.plain_call()
        session.stream_call()
    profiler.disable()
    table = cast(
        "dict[tuple[str, int, str], tuple[int, int, float, float, object]]",
        pstats.Stats(profiler).stats,  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
    )
    rows: list[tuple[float, float, int, str]] = []
    total = 0.0
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _callers) in table.items():
        total += tottime
        if any(part in filename for part in _PROFILED):
            rows.append((tottime, cumtime, ncalls, f"{_short(filename)}:{line}({function})"))
    own = sum(row[0] for row in rows)
    out.write(f"# {calls} plain + {calls} streamed calls under cProfile; {session.describe()}\n")
    out.write(
        f"# instrumentation + OpenTelemetry own time: {own / calls * 1e6:.0f} us of "
        f"{total / calls * 1e6:.0f} us per plain+streamed pair ({100 * own / total:.1f} %)\n"
    )
    for title, key in (("own time", 0), ("cumulative time", 1)):
        out.write(f"\n## by {title} (us per plain+streamed pair)\n")
        out.write(f"{'own':>8}{'cum':>8}{'calls':>9}  function\n")
        for row in sorted(rows, key=lambda r: r[key], reverse=True)[:limit]:
            own_us, cum_us = row[0] / calls * 1e6, row[1] / calls * 1e6
            out.write(f"{own_us:>8.1f}{cum_us:>8.1f}{row[2] / calls:>9.1f}  {row[3]}\n")
    out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peer")
    parser.add_argument(
        "mode",
        choices=("bare", "instrumented"),
        help="instrumented: the contender applied, switchable off for the bare calls",
    )
    parser.add_argument("--profile", type=int, default=0, metavar="CALLS")
    parser.add_argument("--cpu", type=int, default=-1, help="pin to this CPU (-1: do not pin)")
    args = parser.parse_args()
    # Keep the protocol on the real stdout; route whatever a contender prints to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    session = Session(args.peer, args.mode == "instrumented")
    # First calls pay lazy imports and model building: pay them before the rounds start.
    session.run_batch(calls=1, stream=False, warmup=STARTUP_WARMUP)
    session.run_batch(calls=1, stream=True, warmup=STARTUP_WARMUP)
    # Pinned once set up, so the workers' imports may still run in parallel.
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):  # that CPU is not ours: run unpinned
            os.sched_setaffinity(0, {args.cpu})
    if args.profile:
        profile(session, args.profile, out)
        return
    serve(session, sys.stdin, out)
    # Nothing is left to flush (spans are exported synchronously): skip the slow teardown.
    os._exit(0)


if __name__ == "__main__":
    main()
