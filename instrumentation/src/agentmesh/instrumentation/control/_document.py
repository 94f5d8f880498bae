"""The control document: what the collector decided about runs and models, as the app reads it.

The collector serves it at ``GET <OTLP/HTTP base>/v1/control``::

    {"version": 7,
     "runs": {"<run id>": {"action": "stop", "detection_id": "…", "type": "handoff_loop",
                           "explanation": "…", "resume_checkpoint_id": null, "at": 1764…}},
     "breakers": {"gpt-4o": {"state": "open", "until": 1764…, "reason": "…",
                             "detection_id": "…", "provider": "openai"}}}

Parsing is lenient: an entry that does not have the expected shape is skipped, never fatal
(an older app must keep working against a newer collector).

Example:
    >>> doc = ControlDocument.from_json(
    ...     {"version": 3, "runs": {"r1": {"action": "stop", "type": "ping_pong"}},
    ...      "breakers": {"gpt-4o": {"state": "open", "until": 200.0}}}
    ... )
    >>> doc.version, doc.runs["r1"].action, sorted(doc.open_breakers(100.0))
    (3, 'stop', ['gpt-4o'])
    >>> sorted(doc.open_breakers(200.0))  # half-open once the cool-down is over
    []
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, cast

__all__ = ["EMPTY_DOCUMENT", "Breaker", "ControlDocument", "RunAction", "RunControl"]

RunAction = Literal["stop", "warn"]
"""What the collector asks of a run: ``stop`` it at its next step, or only ``warn``."""

_ACTIONS: Final = frozenset({"stop", "warn"})
_STATES: Final = frozenset({"open", "half_open"})
_NO_MODELS: Final[frozenset[str]] = frozenset()


def _str(raw: Mapping[str, object], key: str, default: str = "") -> str:
    value = raw.get(key)
    return value if isinstance(value, str) else default


def _opt_str(raw: Mapping[str, object], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) and value else None


def _float(raw: Mapping[str, object], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


@dataclass(frozen=True, slots=True)
class RunControl:
    """The collector's decision about one run.

    Attributes:
        run_id: The run.
        action: ``stop`` or ``warn``.
        detection_id: The detection behind the decision.
        type: The detection type (``handoff_loop``, ``runaway``…).
        explanation: The detection's explanation, for people.
        resume_checkpoint_id: The last good checkpoint to resume from, when known.
        at: When the decision was made, in seconds since the epoch.
        warnings: Every warning of the run, oldest first (the collector's ``warnings``: several
            detections may warn one run; the entry itself is a stop, or the latest warning).
    """

    run_id: str
    action: RunAction
    detection_id: str = ""
    type: str = ""
    explanation: str = ""
    resume_checkpoint_id: str | None = None
    at: float = 0.0
    warnings: tuple[RunControl, ...] = ()

    @classmethod
    def from_json(cls, run_id: str, raw: object) -> RunControl | None:
        """Read one entry of ``runs``.

        Args:
            run_id: Its key.
            raw: Its decoded JSON value.

        Returns:
            The entry, or ``None`` when it is not a mapping with a known action.
        """
        if not isinstance(raw, Mapping):
            return None
        entry = cast("Mapping[str, object]", raw)
        action = entry.get("action")
        if action not in _ACTIONS:
            return None
        listed = entry.get("warnings")
        warnings: tuple[RunControl, ...] = ()
        if isinstance(listed, list):  # read leniently: a malformed item is skipped
            items = (cls.from_json(run_id, item) for item in cast("list[object]", listed))
            warnings = tuple(w for w in items if w is not None and w.action == "warn")
        return cls(
            run_id=run_id,
            action=cast("RunAction", action),
            detection_id=_str(entry, "detection_id"),
            type=_str(entry, "type"),
            explanation=_str(entry, "explanation"),
            resume_checkpoint_id=_opt_str(entry, "resume_checkpoint_id"),
            at=_float(entry, "at"),
            warnings=warnings,
        )


@dataclass(frozen=True, slots=True)
class Breaker:
    """A circuit breaker the collector opened for one model.

    Attributes:
        model: The model.
        state: ``open`` (do not choose it until ``until``) or ``half_open`` (may be tried).
        until: End of the cool-down, in seconds since the epoch.
        reason: Why it opened, for people.
        detection_id: The detection that opened it.
        provider: The provider the model was failing at, when known.
    """

    model: str
    state: Literal["open", "half_open"]
    until: float = 0.0
    reason: str = ""
    detection_id: str = ""
    provider: str | None = None

    def is_open(self, now: float) -> bool:
        """Tell whether calls must avoid the model at ``now``.

        Args:
            now: The time, in seconds since the epoch.

        Returns:
            ``True`` while the breaker is open and its cool-down runs; after ``until`` (or
            once half-open) the model may be tried again.
        """
        return self.state == "open" and now < self.until

    @classmethod
    def from_json(cls, model: str, raw: object) -> Breaker | None:
        """Read one entry of ``breakers``.

        Args:
            model: Its key.
            raw: Its decoded JSON value.

        Returns:
            The entry, or ``None`` when it is not a mapping with a known state.
        """
        if not isinstance(raw, Mapping):
            return None
        entry = cast("Mapping[str, object]", raw)
        state = entry.get("state")
        if state not in _STATES:
            return None
        return cls(
            model=model,
            state=cast("Literal['open', 'half_open']", state),
            until=_float(entry, "until"),
            reason=_str(entry, "reason"),
            detection_id=_str(entry, "detection_id"),
            provider=_opt_str(entry, "provider"),
        )


def _entries(raw: object) -> dict[str, object]:
    if not isinstance(raw, Mapping):
        return {}
    items = cast("Mapping[object, object]", raw).items()
    return {key: value for key, value in items if isinstance(key, str) and key}


@dataclass(frozen=True, slots=True)
class ControlDocument:
    """The whole control document, as last received.

    Attributes:
        version: Increases on every change (0: nothing received yet).
        runs: Decisions by run id.
        breakers: Breakers by model name.
    """

    version: int = 0
    runs: Mapping[str, RunControl] = field(default_factory=dict[str, RunControl])
    breakers: Mapping[str, Breaker] = field(default_factory=dict[str, Breaker])

    @classmethod
    def from_json(cls, raw: object) -> ControlDocument:
        """Build a document from its decoded JSON.

        Args:
            raw: The decoded JSON.

        Returns:
            The document (malformed entries are left out).

        Raises:
            ValueError: ``raw`` is not an object with an integer ``version``.
        """
        if not isinstance(raw, Mapping):
            raise ValueError("control document: expected a JSON object")
        body = cast("Mapping[str, object]", raw)
        version = body.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            raise ValueError("control document: expected an integer 'version'")
        runs: dict[str, RunControl] = {}
        for run_id, value in _entries(body.get("runs")).items():
            entry = RunControl.from_json(run_id, value)
            if entry is not None:
                runs[run_id] = entry
        breakers: dict[str, Breaker] = {}
        for model, value in _entries(body.get("breakers")).items():
            breaker = Breaker.from_json(model, value)
            if breaker is not None:
                breakers[model] = breaker
        return cls(version, runs, breakers)

    @classmethod
    def parse(cls, body: bytes | str) -> ControlDocument:
        """Build a document from its JSON text.

        Args:
            body: The response body.

        Returns:
            The document.

        Raises:
            ValueError: The body is not JSON or not a control document.
        """
        return cls.from_json(json.loads(body))

    def open_breakers(self, now: float) -> frozenset[str]:
        """Return the models calls must avoid at ``now``.

        Args:
            now: The time, in seconds since the epoch.

        Returns:
            Names of the models whose breaker is open and still cooling down.
        """
        if not self.breakers:
            return _NO_MODELS
        return frozenset(model for model, b in self.breakers.items() if b.is_open(now))


EMPTY_DOCUMENT: Final = ControlDocument()
"""The document before anything was received: no decisions, no breakers."""
