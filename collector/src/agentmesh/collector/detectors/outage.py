"""Provider outages: one provider's model failing or slowing down for every run at once.

Per ``(provider, model)`` the detector keeps the recent calls (``chat`` spans): at most
``max_calls`` of them, ending within ``window_seconds`` of the newest. Two tests open an
*outage episode*:

- **errors**: at least ``min_calls`` recent calls, at least ``error_rate`` of them failed, and
  the failures come from at least ``min_runs`` runs. A failure is a server-side one: HTTP 5xx,
  a timeout, a refused or dropped connection, an overloaded provider — any failed call except a
  rate limit (429s are a :mod:`~agentmesh.collector.detectors.rate_limit` storm, not an outage)
  and a client error (other 4xx, ``BadRequestError``, ``AuthenticationError``, context length
  exceeded…), which are neither failures nor successes here;
- **latency**: the median latency of the recent successful calls (at least ``min_calls`` of
  them, from at least ``min_runs`` runs) is at least ``latency_factor`` times the key's baseline
  median. The baseline is the last ``baseline_size`` successful latencies that left the recent
  window while no episode was open (at least ``min_baseline`` before the test applies), so a
  slowdown never becomes its own baseline.

A bounded window is the drift test rather than river's ``ADWIN``/``PageHinkley`` (measured here
at 0.45 µs / 1.0 µs per update): the firing rule is a statement about the recent window anyway,
and the window's state is plain JSON for :meth:`ProviderOutageDetector.snapshot`.

The episode is reported once, by a ``provider_outage`` detection whose id is keyed by
``(provider, model, episode start)``. It ends when calls succeed again: ``recovery_successes``
successful calls in a row (each faster than ``latency_factor`` times the baseline median, when
there is one). The detector then reports an ``info`` detection of type ``provider_recovered``
(details name the outage's detection id), which is what closes circuit breakers; the recent
window is cleared so that the failures of the ended episode do not open another.
:meth:`ProviderOutageDetector.open_episodes` lists the episodes still open.

Memory: at most ``max_keys`` pairs (least recently called dropped), each with ``max_calls``
recent calls and ``baseline_size`` latencies. Cost: spans that are not ``chat`` spans cost one
comparison; a call costs a few deque operations, and a median only when its latency is already
``latency_factor`` times the baseline.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from agentmesh.collector.detection import Detection, JsonValue, detection_id
from agentmesh.collector.detectors._attempts import called_model, model_calls, model_label
from agentmesh.collector.detectors._window_state import (
    as_float,
    as_int,
    as_list,
    as_map,
    as_str,
)
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.detectors.rate_limit import is_rate_limited
from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError

__all__ = [
    "PROVIDER_OUTAGE",
    "PROVIDER_RECOVERED",
    "OutageEpisode",
    "ProviderOutageDetector",
    "is_client_error",
]

PROVIDER_OUTAGE: Final = "provider_outage"
"""Detection type of an outage episode that began."""

PROVIDER_RECOVERED: Final = "provider_recovered"
"""Detection type (severity ``info``) of an outage episode that ended."""

OutageReason = Literal["errors", "latency"]
"""Which test opened an episode."""

_CHAT: Final = semconv.Operation.CHAT
_NO_TRACE: Final = "*"
"""Trace part of cross-run detection ids (an outage belongs to no single trace)."""
_CLIENT_WORDS: Final = (
    "badrequest",
    "authentication",
    "permission",
    "notfound",
    "invalidrequest",
    "contextlength",
    "contentfilter",
    "contentpolicy",
    "unprocessable",
    "validation",
    "invalidargument",
)
_ERROR_TYPES_KEPT: Final = 4096
_BASELINE_REFRESH: Final = 16
"""Baseline latencies added between two recomputations of its median."""

_client_cache: dict[str, bool] = {}


def is_client_error(node: GraphNode) -> bool:
    """Tell whether a failed call was refused for what it asked (not for the provider's health).

    Args:
        node: A failed span.

    Returns:
        ``True`` for HTTP 4xx other than 408 and 429, or, without a status, an error type such
        as ``BadRequestError``, ``AuthenticationError``, ``NotFoundError`` or a context length
        or content filter error.
    """
    status = node.http_status
    if status is not None:
        return 400 <= status < 500 and status not in (408, 429)
    error_type = node.error_type
    if error_type is None:
        return False
    known = _client_cache.get(error_type)
    if known is None:
        squashed = error_type.lower().replace("_", "").replace(" ", "").replace("-", "")
        known = any(word in squashed for word in _CLIENT_WORDS)
        if len(_client_cache) >= _ERROR_TYPES_KEPT:
            _client_cache.clear()
        _client_cache[error_type] = known
    return known


@dataclass(slots=True)
class OutageEpisode:
    """An outage that was reported and has not recovered.

    Attributes:
        provider: ``gen_ai.provider.name`` (empty when not recorded).
        model: The model (empty when not recorded).
        reason: ``errors`` or ``latency``.
        started_ns: End time of the episode's first failed (or slow) call.
        detection_id: Id of the ``provider_outage`` detection.
        good_streak: Successful calls in a row since the last bad one.
    """

    provider: str
    model: str
    reason: OutageReason
    started_ns: int
    detection_id: str
    good_streak: int = 0


class _Call:
    """One recent call: ``(end_ns, failed, latency_s, run_id, trace_id, span_id)``."""

    __slots__ = ("end_ns", "failed", "latency_s", "run_id", "span_id", "trace_id")

    def __init__(
        self, end_ns: int, failed: bool, latency_s: float, run_id: str, trace_id: str, span_id: str
    ) -> None:
        self.end_ns = end_ns
        self.failed = failed
        self.latency_s = latency_s
        self.run_id = run_id
        self.trace_id = trace_id
        self.span_id = span_id

    def to_json(self) -> list[JsonValue]:
        return [self.end_ns, self.failed, self.latency_s, self.run_id, self.trace_id, self.span_id]


@dataclass(slots=True)
class _Line:
    """What is known of one ``(provider, model)``."""

    recent: deque[_Call] = field(default_factory=lambda: deque())
    failures: int = 0
    baseline: list[float] = field(default_factory=lambda: [])
    baseline_next: int = 0
    """Where the next baseline latency goes once the ring is full."""
    baseline_median: float = 0.0
    baseline_stale: int = 0
    episode: OutageEpisode | None = None


class ProviderOutageDetector:
    """Flags provider/model outages across runs and reports their recovery.

    Args:
        window_seconds: How far back (in span end time) from the newest call the recent window
            reaches.
        max_calls: Most calls in the recent window.
        min_calls: Calls the recent window needs before either test applies.
        min_runs: Distinct runs the failed (or slow) calls must come from.
        error_rate: Fraction of failed recent calls that is an outage.
        latency_factor: How many times the baseline median the recent median must reach.
        baseline_size: Successful latencies kept as the baseline.
        min_baseline: Baseline latencies needed before the latency test applies.
        recovery_successes: Successful calls in a row that end an episode.
        max_keys: ``(provider, model)`` pairs remembered (least recently called dropped).
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.
    """

    def __init__(
        self,
        window_seconds: float = 60.0,
        max_calls: int = 20,
        min_calls: int = 6,
        min_runs: int = 2,
        error_rate: float = 0.5,
        latency_factor: float = 5.0,
        *,
        baseline_size: int = 200,
        min_baseline: int = 30,
        recovery_successes: int = 3,
        max_keys: int = 1024,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if window_seconds <= 0:
            raise DetectionError(f"window_seconds must be positive, got {window_seconds}")
        if not 1 <= min_calls <= max_calls:
            raise DetectionError(f"need 1 <= min_calls <= max_calls, got {min_calls}, {max_calls}")
        if min_runs < 1 or recovery_successes < 1 or max_keys < 1:
            raise DetectionError("min_runs, recovery_successes and max_keys must be at least 1")
        if not 0 < error_rate <= 1:
            raise DetectionError(f"error_rate must be in (0, 1], got {error_rate}")
        if latency_factor <= 1:
            raise DetectionError(f"latency_factor must be above 1, got {latency_factor}")
        if not 1 <= min_baseline <= baseline_size:
            raise DetectionError(
                f"need 1 <= min_baseline <= baseline_size, got {min_baseline}, {baseline_size}"
            )
        self.window_seconds = window_seconds
        self.max_calls = max_calls
        self.min_calls = min_calls
        self.min_runs = min_runs
        self.error_rate = error_rate
        self.latency_factor = latency_factor
        self.baseline_size = baseline_size
        self.min_baseline = min_baseline
        self.recovery_successes = recovery_successes
        self.max_keys = max_keys
        self._window_ns = int(window_seconds * 1e9)
        self._clock = clock
        self._lines: OrderedDict[tuple[str, str], _Line] = OrderedDict()

    @property
    def name(self) -> str:
        """The detection type reported: ``provider_outage`` (and ``provider_recovered``)."""
        return PROVIDER_OUTAGE

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Add the cycle's model calls and report outages that began or ended.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            One ``provider_outage`` detection per episode that began, one
            ``provider_recovered`` per episode that ended.
        """
        found: list[Detection] = []
        for span in cycle.nodes:
            if span.operation != _CHAT:
                continue
            for node in model_calls(span) if span.failed_attempts else (span,):
                if node.error and (is_rate_limited(node) or is_client_error(node)):
                    continue
                detection = self._add(node)
                if detection is not None:
                    found.append(detection)
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """Nothing to report with time alone (episodes end on successful calls).

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            No detections.
        """
        del now_ns
        return []

    def open_episodes(self) -> list[OutageEpisode]:
        """Outages reported that have not recovered.

        Returns:
            The episodes, least recently called first.
        """
        return [line.episode for line in self._lines.values() if line.episode is not None]

    def baseline_median(self, provider: str | None, model: str | None) -> float | None:
        """Return the baseline median latency of a pair, in seconds.

        Args:
            provider: ``gen_ai.provider.name``.
            model: The model.

        Returns:
            The median, or ``None`` while fewer than ``min_baseline`` latencies are known.
        """
        line = self._lines.get((provider or "", model or ""))
        if line is None or len(line.baseline) < self.min_baseline:
            return None
        return self._median_of_baseline(line)

    def snapshot(self) -> dict[str, JsonValue]:
        """Return windows, baselines and open episodes as JSON-ready data.

        Returns:
            The state; :meth:`restore` takes it back.
        """
        lines: list[JsonValue] = []
        for (provider, model), line in self._lines.items():
            episode = line.episode
            ring = line.baseline[line.baseline_next :] + line.baseline[: line.baseline_next]
            lines.append(
                {
                    "provider": provider,
                    "model": model,
                    "recent": [call.to_json() for call in line.recent],
                    "baseline": list[JsonValue](ring),
                    "episode": None
                    if episode is None
                    else [episode.reason, episode.started_ns, episode.detection_id],
                }
            )
        return {"version": 1, "lines": lines}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Replace windows, baselines and episodes by a snapshot's.

        Args:
            state: What :meth:`snapshot` returned.

        Raises:
            DetectionError: The state is not a snapshot of this detector.
        """
        restored: OrderedDict[tuple[str, str], _Line] = OrderedDict()
        for raw_item in as_list(as_map(state, "state").get("lines"), "lines"):
            raw = as_map(raw_item, "line")
            provider = as_str(raw.get("provider"), "provider")
            model = as_str(raw.get("model"), "model")
            line = _Line()
            for raw_call in as_list(raw.get("recent"), "recent")[-self.max_calls :]:
                fields = as_list(raw_call, "call")
                if len(fields) != 6 or not isinstance(fields[1], bool):
                    raise DetectionError(f"snapshot call: expected 6 fields, got {fields!r}")
                call = _Call(
                    as_int(fields[0], "call end"),
                    fields[1],
                    as_float(fields[2], "call latency"),
                    as_str(fields[3], "call run"),
                    as_str(fields[4], "call trace"),
                    as_str(fields[5], "call span"),
                )
                line.recent.append(call)
                line.failures += call.failed
            baseline = [as_float(v, "baseline") for v in as_list(raw.get("baseline"), "baseline")]
            line.baseline = baseline[-self.baseline_size :]
            line.baseline_next = len(line.baseline) % self.baseline_size
            line.baseline_stale = len(line.baseline)
            raw_episode = raw.get("episode")
            if raw_episode is not None:
                fields = as_list(raw_episode, "episode")
                if len(fields) != 3 or fields[0] not in ("errors", "latency"):
                    raise DetectionError(f"snapshot episode: unexpected {fields!r}")
                reason: OutageReason = "errors" if fields[0] == "errors" else "latency"
                line.episode = OutageEpisode(
                    provider,
                    model,
                    reason,
                    as_int(fields[1], "episode start"),
                    as_str(fields[2], "episode id"),
                )
            restored[(provider, model)] = line
        while len(restored) > self.max_keys:
            restored.popitem(last=False)
        self._lines = restored

    def _add(self, node: GraphNode) -> Detection | None:
        ident = (node.provider or "", called_model(node) or "")
        line = self._lines.get(ident)
        if line is None:
            line = self._lines[ident] = _Line()
            if len(self._lines) > self.max_keys:
                self._lines.popitem(last=False)
        else:
            self._lines.move_to_end(ident)
        failed = node.error
        latency_s = (node.end_ns - node.start_ns) / 1e9 if node.end_ns > node.start_ns else 0.0
        call = _Call(
            node.end_ns,
            failed,
            latency_s,
            node.run_id or node.trace_id,
            node.trace_id,
            node.span_id,
        )
        recent = line.recent
        recent.append(call)
        line.failures += failed
        horizon = node.end_ns - self._window_ns
        while len(recent) > self.max_calls or recent[0].end_ns < horizon:
            old = recent.popleft()
            line.failures -= old.failed
            if not old.failed and line.episode is None:
                self._add_baseline(line, old.latency_s)
        episode = line.episode
        if episode is not None:
            return self._maybe_recovered(ident, line, episode, call)
        n = len(recent)
        if n < self.min_calls:
            return None
        if line.failures >= self.error_rate * n:
            runs = {c.run_id for c in recent if c.failed}
            if len(runs) >= self.min_runs:
                return self._open(ident, line, "errors", node)
        elif not failed and len(line.baseline) >= self.min_baseline:
            limit = self.latency_factor * self._median_of_baseline(line)
            if latency_s >= limit:
                ok = [c for c in recent if not c.failed]
                if (
                    len(ok) >= self.min_calls
                    and len({c.run_id for c in ok}) >= self.min_runs
                    and _median([c.latency_s for c in ok]) >= limit
                ):
                    return self._open(ident, line, "latency", node)
        return None

    def _add_baseline(self, line: _Line, latency_s: float) -> None:
        baseline = line.baseline
        if len(baseline) < self.baseline_size:
            baseline.append(latency_s)
        else:
            baseline[line.baseline_next] = latency_s
            line.baseline_next = (line.baseline_next + 1) % self.baseline_size
        line.baseline_stale += 1

    def _median_of_baseline(self, line: _Line) -> float:
        if line.baseline_stale and (
            line.baseline_stale >= _BASELINE_REFRESH or line.baseline_median == 0.0
        ):
            line.baseline_median = _median(line.baseline)
            line.baseline_stale = 0
        return line.baseline_median

    def _open(
        self, ident: tuple[str, str], line: _Line, reason: OutageReason, node: GraphNode
    ) -> Detection:
        provider, model = ident
        recent = line.recent
        if reason == "errors":
            evidence = [c for c in recent if c.failed]
        else:
            limit = self.latency_factor * line.baseline_median
            evidence = [c for c in recent if not c.failed and c.latency_s >= limit]
        started_ns = min(c.end_ns for c in evidence)
        det_id = detection_id(PROVIDER_OUTAGE, _NO_TRACE, f"{provider}|{model}|{started_ns}")
        line.episode = OutageEpisode(provider, model, reason, started_ns, det_id)
        runs = sorted({c.run_id for c in evidence})
        target = model_label(provider, model)
        if reason == "errors":
            explanation = (
                f"provider outage on {target}: {line.failures} of the last {len(recent)} calls "
                f"failed (from {len(runs)} runs)"
            )
            latency: JsonValue = None
        else:
            ok = [c.latency_s for c in recent if not c.failed]
            latency = _median(ok)
            explanation = (
                f"provider outage on {target}: median latency of the last {len(ok)} calls is "
                f"{latency:.2f} s, {latency / line.baseline_median:.1f}x its usual "
                f"{line.baseline_median:.2f} s (from {len(runs)} runs)"
            )
        error_types = sorted({t for t in (node.error_type,) if t is not None})
        return Detection(
            id=det_id,
            type=PROVIDER_OUTAGE,
            severity="error",
            trace_id=node.trace_id,
            run_id=node.run_id or node.trace_id,
            agent=None,
            span_ids=tuple(c.span_id for c in evidence),
            explanation=explanation,
            detected_at_ns=self._clock(),
            details={
                "provider": provider or None,
                "model": model or None,
                "reason": reason,
                "episode_start_ns": started_ns,
                "calls": len(recent),
                "failures": line.failures,
                "runs": list[JsonValue](runs),
                "trace_ids": list[JsonValue](sorted({c.trace_id for c in evidence})),
                "median_latency_s": latency,
                "baseline_median_latency_s": line.baseline_median or None,
                "error_types": list[JsonValue](error_types),
            },
        )

    def _maybe_recovered(
        self, ident: tuple[str, str], line: _Line, episode: OutageEpisode, call: _Call
    ) -> Detection | None:
        base = line.baseline_median if len(line.baseline) >= self.min_baseline else 0.0
        good = not call.failed and (base == 0.0 or call.latency_s < self.latency_factor * base)
        episode.good_streak = episode.good_streak + 1 if good else 0
        if episode.good_streak < self.recovery_successes:
            return None
        line.episode = None
        line.recent.clear()
        line.failures = 0
        provider, model = ident
        duration_s = max(0, call.end_ns - episode.started_ns) / 1e9
        return Detection(
            id=detection_id(
                PROVIDER_RECOVERED, _NO_TRACE, f"{provider}|{model}|{episode.started_ns}"
            ),
            type=PROVIDER_RECOVERED,
            severity="info",
            trace_id=call.trace_id,
            run_id=call.run_id,
            agent=None,
            span_ids=(call.span_id,),
            explanation=(
                f"{model_label(provider, model)} recovered: {self.recovery_successes} calls in a "
                f"row succeeded after {duration_s:.1f} s of {episode.reason}"
            ),
            detected_at_ns=self._clock(),
            details={
                "provider": provider or None,
                "model": model or None,
                "reason": episode.reason,
                "outage_detection_id": episode.detection_id,
                "episode_start_ns": episode.started_ns,
                "recovered_at_ns": call.end_ns,
            },
        )


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2
