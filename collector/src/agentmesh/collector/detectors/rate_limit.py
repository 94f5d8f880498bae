"""Rate-limit storms: a provider's model answering HTTP 429 to many runs at once.

A ``chat`` span is *rate limited* when it failed with ``http.response.status_code`` 429 or an
``error.type`` naming a rate limit (``RateLimitError``, ``rate_limit_exceeded``, ``Too Many
Requests``…; see :func:`is_rate_limited`). Per ``(provider, model)`` the detector keeps the
rate-limited calls of a sliding window of span *end* times (``window_seconds``); a storm is at
least ``min_events`` of them from at least ``min_runs`` runs, making at least ``min_fraction`` of
the pair's calls in the window (calls are counted from the pair's first 429 on, so the fraction
errs high at a storm's start). One retried 429 in one run — or a run retrying alone — is not a
storm, and neither are the few 429s a busy model answers now and then.

A storm is reported once per *episode*: the episode starts with the oldest 429 in the window
that tipped it, and lasts while 429s keep coming less than ``window_seconds`` apart. The
detection id is keyed by ``(provider, model, episode start)``, so replaying the same spans
yields the same id. :meth:`RateLimitStormDetector.open_episodes` lists the storms still going.

Memory: at most ``max_keys`` ``(provider, model)`` pairs (least recently rate-limited forgotten)
and ``max_events`` 429s and ``max_events`` call times per window. Cost: spans that are not
``chat`` spans cost one comparison; a successful call, one dictionary lookup (and a deque append
when its model was rate limited lately).

Example:
    >>> from agentmesh.collector.detectors.base import CycleView
    >>> from agentmesh.collector.graph.node import GraphNode
    >>> def call(run: str, end_s: int) -> GraphNode:
    ...     return GraphNode(
    ...         run, run + "-" + str(end_s), None, end_s * 10**9 - 1, end_s * 10**9, "chat",
    ...         None, 0, 0, 0.0, None, run, None, None, None, error=True, http_status=429,
    ...         provider="openai", model="gpt-4o",
    ...     )
    >>> detector = RateLimitStormDetector(min_events=3, min_runs=2, clock=lambda: 0)
    >>> nodes = [call("r1", 1), call("r2", 2), call("r1", 3), call("r2", 4)]
    >>> [found] = detector.observe(CycleView(nodes, {}, 0))
    >>> found.explanation.split(": ")[1]
    '3 HTTP 429 answers from 2 runs within 30 s (100% of its calls)'
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from agentmesh.collector.detection import Detection, JsonValue, detection_id
from agentmesh.collector.detectors._attempts import called_model, model_calls, model_label
from agentmesh.collector.detectors._window_state import as_int, as_list, as_map, as_str
from agentmesh.collector.detectors.base import CycleView
from agentmesh.collector.graph.node import GraphNode
from agentmesh.core import semconv
from agentmesh.core.errors import DetectionError

__all__ = ["RATE_LIMIT_STORM", "RateLimitStormDetector", "StormEpisode", "is_rate_limited"]

RATE_LIMIT_STORM: Final = "rate_limit_storm"
"""Detection type of :class:`RateLimitStormDetector`."""

_CHAT: Final = semconv.Operation.CHAT
_RATE_LIMIT_WORDS: Final = ("ratelimit", "toomanyrequests", "429", "throttl")
_ERROR_TYPES_KEPT: Final = 4096
_NO_TRACE: Final = "*"
"""Trace part of cross-run detection ids (a storm belongs to no single trace)."""

_error_type_cache: dict[str, bool] = {}


def is_rate_limited(node: GraphNode) -> bool:
    """Tell whether a failed call was refused for its rate.

    Args:
        node: A span.

    Returns:
        ``True`` for a failed span with HTTP status 429 or an error type naming a rate limit
        (case, spaces, ``_`` and ``-`` ignored: ``RateLimitError``, ``rate_limit_exceeded``,
        ``Too Many Requests``, ``ThrottlingException``).
    """
    if not node.error:
        return False
    if node.http_status == 429:
        return True
    error_type = node.error_type
    if error_type is None or node.http_status is not None:
        return False  # another status was recorded: that is what it was
    known = _error_type_cache.get(error_type)
    if known is None:
        squashed = error_type.lower().replace("_", "").replace(" ", "").replace("-", "")
        known = any(word in squashed for word in _RATE_LIMIT_WORDS)
        if len(_error_type_cache) >= _ERROR_TYPES_KEPT:
            _error_type_cache.clear()
        _error_type_cache[error_type] = known
    return known


@dataclass(slots=True)
class StormEpisode:
    """A storm that was reported and is still going.

    Attributes:
        provider: ``gen_ai.provider.name`` (empty when not recorded).
        model: The model (empty when not recorded).
        started_ns: End time of the first 429 of the episode.
        last_ns: End time of its latest 429.
        detection_id: Id of the detection that reported it.
        events: 429s counted in the episode so far.
    """

    provider: str
    model: str
    started_ns: int
    last_ns: int
    detection_id: str
    events: int


@dataclass(slots=True)
class _Key:
    """The window of one ``(provider, model)``: its recent 429s and open episode."""

    events: deque[tuple[int, str, str, str]] = field(default_factory=lambda: deque())
    """``(end_ns, run_id, trace_id, span_id)`` of each 429, in arrival order."""
    runs: dict[str, int] = field(default_factory=lambda: {})
    """How many of the window's 429s each run has."""
    episode: StormEpisode | None = None
    calls: deque[int] = field(default_factory=lambda: deque())
    """End times of the pair's calls (429s included) since its first 429, in arrival order."""


class RateLimitStormDetector:
    """Flags 429 storms per ``(provider, model)`` across runs.

    Args:
        window_seconds: Sliding window of span end times the 429s are counted in; also how long
            an episode lasts after its last 429.
        min_events: 429s in the window that make a storm.
        min_runs: Distinct runs those 429s must come from.
        min_fraction: Share of the window's calls of the pair (429s included) the 429s must be;
            0 counts 429s alone.
        max_keys: ``(provider, model)`` pairs remembered (least recently rate-limited dropped).
        max_events: 429s (and call times) kept per pair, the oldest dropped first; at least
            ``min_events``.
        clock: Source of ``detected_at_ns``.

    Raises:
        DetectionError: A bound is out of range.
    """

    def __init__(
        self,
        window_seconds: float = 30.0,
        min_events: int = 5,
        min_runs: int = 2,
        min_fraction: float = 0.1,
        *,
        max_keys: int = 1024,
        max_events: int = 1000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if window_seconds <= 0:
            raise DetectionError(f"window_seconds must be positive, got {window_seconds}")
        if min_events < 1 or min_runs < 1:
            raise DetectionError(
                f"min_events and min_runs must be at least 1, got {min_events}, {min_runs}"
            )
        if not 0 <= min_fraction <= 1:
            raise DetectionError(f"min_fraction must be in [0, 1], got {min_fraction}")
        if max_keys < 1 or max_events < min_events:
            raise DetectionError(
                f"need max_keys >= 1 and max_events >= min_events, got {max_keys}, {max_events}"
            )
        self.window_seconds = window_seconds
        self.min_events = min_events
        self.min_runs = min_runs
        self.min_fraction = min_fraction
        self.max_keys = max_keys
        self.max_events = max_events
        self._window_ns = int(window_seconds * 1e9)
        self._clock = clock
        self._keys: OrderedDict[tuple[str, str], _Key] = OrderedDict()

    @property
    def name(self) -> str:
        """The detection type reported: ``rate_limit_storm``."""
        return RATE_LIMIT_STORM

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Count the cycle's rate-limited calls and report storms that began.

        Args:
            cycle: The spans and changed graphs.

        Returns:
            One detection per storm episode that started in this cycle.
        """
        found: list[Detection] = []
        keys = self._keys
        for span in cycle.nodes:
            if span.operation != _CHAT:
                continue
            for node in model_calls(span) if span.failed_attempts else (span,):
                if node.error and is_rate_limited(node):
                    detection = self._add(node)
                    if detection is not None:
                        found.append(detection)
                elif keys:
                    key = keys.get((node.provider or "", called_model(node) or ""))
                    if key is not None:
                        key.calls.append(node.end_ns)
                        if len(key.calls) > self.max_events:
                            key.calls.popleft()
        return found

    def tick(self, now_ns: int) -> list[Detection]:
        """Nothing to report with time alone (windows close on span times).

        Args:
            now_ns: Wall-clock time, Unix nanoseconds.

        Returns:
            No detections.
        """
        del now_ns
        return []

    def open_episodes(self) -> list[StormEpisode]:
        """Storms reported whose latest 429 is less than a window older than the newest seen.

        Returns:
            The episodes, least recently rate-limited first.
        """
        return [key.episode for key in self._keys.values() if key.episode is not None]

    def snapshot(self) -> dict[str, JsonValue]:
        """Return the windows and open episodes as JSON-ready data.

        Returns:
            The state; :meth:`restore` takes it back.
        """
        keys: list[JsonValue] = []
        for (provider, model), key in self._keys.items():
            episode = key.episode
            keys.append(
                {
                    "provider": provider,
                    "model": model,
                    "events": [list(event) for event in key.events],
                    "calls": list[JsonValue](key.calls),
                    "episode": None
                    if episode is None
                    else [
                        episode.started_ns,
                        episode.last_ns,
                        episode.detection_id,
                        episode.events,
                    ],
                }
            )
        return {"version": 1, "keys": keys}

    def restore(self, state: Mapping[str, JsonValue]) -> None:
        """Replace the windows by a snapshot's.

        Args:
            state: What :meth:`snapshot` returned.

        Raises:
            DetectionError: The state is not a snapshot of this detector.
        """
        restored: OrderedDict[tuple[str, str], _Key] = OrderedDict()
        for raw_item in as_list(as_map(state, "state").get("keys"), "keys"):
            raw = as_map(raw_item, "key")
            provider, model = (
                as_str(raw.get("provider"), "provider"),
                as_str(raw.get("model"), "model"),
            )
            key = _Key()
            for raw_event in as_list(raw.get("events"), "events")[-self.max_events :]:
                event = as_list(raw_event, "event")
                if len(event) != 4:
                    raise DetectionError(f"snapshot event: expected 4 fields, got {event!r}")
                run_id = as_str(event[1], "run id")
                key.events.append(
                    (
                        as_int(event[0], "end"),
                        run_id,
                        as_str(event[2], "trace"),
                        as_str(event[3], "span"),
                    )
                )
                key.runs[run_id] = key.runs.get(run_id, 0) + 1
            for raw_call in as_list(raw.get("calls", []), "calls")[-self.max_events :]:
                key.calls.append(as_int(raw_call, "call end"))
            raw_episode = raw.get("episode")
            if raw_episode is not None:
                ep = as_list(raw_episode, "episode")
                if len(ep) != 4:
                    raise DetectionError(f"snapshot episode: expected 4 fields, got {ep!r}")
                key.episode = StormEpisode(
                    provider,
                    model,
                    as_int(ep[0], "episode start"),
                    as_int(ep[1], "episode last"),
                    as_str(ep[2], "episode id"),
                    as_int(ep[3], "episode events"),
                )
            restored[(provider, model)] = key
        while len(restored) > self.max_keys:
            restored.popitem(last=False)
        self._keys = restored

    def _add(self, node: GraphNode) -> Detection | None:
        ident = (node.provider or "", called_model(node) or "")
        key = self._keys.get(ident)
        if key is None:
            key = self._keys[ident] = _Key()
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(ident)
        end_ns = node.end_ns
        run_id = node.run_id or node.trace_id
        events, runs, calls = key.events, key.runs, key.calls
        events.append((end_ns, run_id, node.trace_id, node.span_id))
        calls.append(end_ns)
        runs[run_id] = runs.get(run_id, 0) + 1
        horizon = end_ns - self._window_ns
        while events and (events[0][0] < horizon or len(events) > self.max_events):
            old_run = events.popleft()[1]
            left = runs[old_run] - 1
            if left:
                runs[old_run] = left
            else:
                del runs[old_run]
        while calls and (calls[0] < horizon or len(calls) > self.max_events):
            calls.popleft()
        episode = key.episode
        if episode is not None:
            if end_ns - episode.last_ns <= self._window_ns:
                episode.last_ns = max(episode.last_ns, end_ns)
                episode.events += 1
                return None
            key.episode = None  # quiet for a whole window: that storm is over
        if len(events) < self.min_events or len(runs) < self.min_runs:
            return None
        if self.min_fraction > 0 and _refused(events, calls) < self.min_fraction * len(calls):
            return None
        return self._open(ident, key, node)

    def _open(self, ident: tuple[str, str], key: _Key, node: GraphNode) -> Detection:
        provider, model = ident
        started_ns = min(event[0] for event in key.events)
        det_id = detection_id(RATE_LIMIT_STORM, _NO_TRACE, f"{provider}|{model}|{started_ns}")
        key.episode = StormEpisode(
            provider, model, started_ns, node.end_ns, det_id, len(key.events)
        )
        target = model_label(provider, model)
        window = f"{self.window_seconds:g}"
        return Detection(
            id=det_id,
            type=RATE_LIMIT_STORM,
            severity="warning",
            trace_id=node.trace_id,
            run_id=node.run_id or node.trace_id,
            agent=None,
            span_ids=tuple(event[3] for event in key.events),
            explanation=(
                f"rate-limit storm on {target}: {len(key.events)} HTTP 429 answers "
                f"from {len(key.runs)} runs within {window} s "
                f"({_refused(key.events, key.calls) / max(1, len(key.calls)):.0%} of its calls)"
            ),
            detected_at_ns=self._clock(),
            details={
                "provider": provider or None,
                "model": model or None,
                "episode_start_ns": started_ns,
                "events": len(key.events),
                "runs": list[JsonValue](sorted(key.runs)),
                "trace_ids": list[JsonValue](sorted({event[2] for event in key.events})),
                "window_seconds": self.window_seconds,
                "min_events": self.min_events,
                "min_runs": self.min_runs,
                "calls": len(key.calls),
                "min_fraction": self.min_fraction,
            },
        )


def _refused(events: deque[tuple[int, str, str, str]], calls: deque[int]) -> int:
    """How many of the 429s fall in the span of the calls kept (all of them unless capped)."""
    if not calls:
        return len(events)
    oldest = calls[0]
    count = 0
    for event in reversed(events):
        if event[0] < oldest:
            break
        count += 1
    return count
