"""The control document the collector serves to applications: stopped runs and open breakers.

Applications poll it (``GET /v1/control``) and act on it: a run listed in ``runs`` with action
``stop`` raises :class:`~agentmesh.core.errors.RunStoppedError` at its next step; a model listed
in ``breakers`` is not chosen until ``until`` (then it may be tried: half-open).

The public JSON is exactly the contract's::

    {"version": 3,
     "runs": {"run-1": {"action": "stop", "detection_id": "det-…", "type": "handoff_loop",
                        "explanation": "…", "resume_checkpoint_id": "ckpt-2", "at": 1.7e9}},
     "breakers": {"gpt-4o": {"state": "open", "until": 1.7e9, "reason": "…",
                             "detection_id": "det-…", "provider": "openai"}}}

A run has one entry, the decision that matters most (a ``stop`` wins over warnings; else the
latest warning), and that entry is what every application reads. A run the collector warned
about also carries ``warnings``: every warn decision of the run, oldest first (at most
:data:`MAX_WARNINGS`), each shaped like a run entry with action ``warn``, so several warnings
decided together all reach applications that read the list::

    "run-2": {"action": "warn", "detection_id": "det-b", "type": "cost_spike", …,
              "warnings": [{"action": "warn", "detection_id": "det-a",
                            "type": "latency_spike", …},
                           {"action": "warn", "detection_id": "det-b",
                            "type": "cost_spike", …}]}

Applications that know nothing of ``warnings`` ignore it and read the entry as before. An entry
without warnings has no ``warnings`` key.

The stored JSON (in Redis) adds ``cooldown_seconds`` to each breaker: the cool-down that set its
``until``, doubled when the breaker re-opens.

Example:
    >>> doc = ControlDocument(version=2, breakers={"m": Breaker("open", 10.0, "down", "det-1")})
    >>> ControlDocument.from_json(doc.to_json()) == doc
    True
    >>> "cooldown_seconds" in doc.to_json(public=True)
    False
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, cast

__all__ = ["MAX_WARNINGS", "Breaker", "BreakerState", "ControlDocument", "RunAction", "RunControl"]

RunAction = Literal["stop", "warn"]
"""What an application does with a listed run: end it, or only report it."""

BreakerState = Literal["open", "half_open"]
"""``open``: do not choose the model until ``until``; ``half_open``: it may be tried again."""

_RUN_ACTIONS: tuple[RunAction, ...] = ("stop", "warn")
_BREAKER_STATES: tuple[BreakerState, ...] = ("open", "half_open")

MAX_WARNINGS = 32
"""Warnings listed per run at most (the oldest leave first)."""


@dataclass(frozen=True, slots=True)
class RunControl:
    """What the collector asks of one run.

    Attributes:
        action: ``stop`` (the next step raises ``RunStoppedError``) or ``warn``.
        detection_id: The detection behind it.
        type: Its detection type, for example ``handoff_loop``.
        explanation: The detection's explanation, for people.
        resume_checkpoint_id: The last good handoff checkpoint of the run, when known.
        at: When the collector decided, Unix seconds.
        warnings: Every warn decision of the run, oldest first (each one without
            ``warnings`` of its own); empty for a run never warned about.
    """

    action: RunAction
    detection_id: str
    type: str
    explanation: str
    resume_checkpoint_id: str | None
    at: float
    warnings: tuple[RunControl, ...] = ()

    def listing(self, control: RunControl) -> RunControl | None:
        """Return this entry with another decision about the same run added.

        A ``stop`` already listed stays as it is (the run ends at its next step); a new
        ``stop`` replaces a warning and keeps its ``warnings``; a new warning joins
        ``warnings`` and becomes the entry (what applications that do not read ``warnings``
        see). A detection already listed changes nothing.

        Args:
            control: The new decision (its own ``warnings`` are ignored).

        Returns:
            The new entry, or ``None`` when nothing changes.

        Example:
            >>> a = RunControl("warn", "det-a", "latency_spike", "slow", None, 1.0)
            >>> b = RunControl("warn", "det-b", "cost_spike", "costly", None, 2.0)
            >>> both = RunControl.first(a).listing(b)
            >>> both.detection_id, [w.detection_id for w in both.warnings]
            ('det-b', ['det-a', 'det-b'])
            >>> both.listing(a) is None
            True
        """
        if self.action == "stop" or any(
            w.detection_id == control.detection_id for w in (self, *self.warnings)
        ):
            return None
        control = replace(control, warnings=())
        # an entry an older collector wrote lists no warnings, not even its own
        listed = self.warnings or ((replace(self, warnings=()),) if self.action == "warn" else ())
        if control.action == "stop":
            return replace(control, warnings=listed)
        return replace(control, warnings=(*listed, control)[-MAX_WARNINGS:])

    @classmethod
    def first(cls, control: RunControl) -> RunControl:
        """Return the entry of a run's first decision.

        Args:
            control: The decision.

        Returns:
            The entry: a warning lists itself in ``warnings``.
        """
        bare = replace(control, warnings=())
        return replace(bare, warnings=(bare,)) if control.action == "warn" else bare

    def to_dict(self) -> dict[str, object]:
        """Return the entry as JSON-ready data (``warnings`` only when there are some).

        Returns:
            The data.
        """
        entry: dict[str, object] = {
            "action": self.action,
            "detection_id": self.detection_id,
            "type": self.type,
            "explanation": self.explanation,
            "resume_checkpoint_id": self.resume_checkpoint_id,
            "at": self.at,
        }
        if self.warnings:
            entry["warnings"] = [warning.to_dict() for warning in self.warnings]
        return entry


@dataclass(frozen=True, slots=True)
class Breaker:
    """An open circuit breaker on one model.

    Attributes:
        state: ``open`` or ``half_open``.
        until: Until when applications must not choose the model, Unix seconds.
        reason: Why it opened, for people.
        detection_id: The detection that opened it.
        provider: The model's provider, when known.
        cooldown_seconds: The cool-down that set ``until`` (doubled on each re-open; stored,
            not served).
    """

    state: BreakerState
    until: float
    reason: str
    detection_id: str
    provider: str | None = None
    cooldown_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class ControlDocument:
    """One version of the control document (immutable: changes make a new one).

    Attributes:
        version: Increases on every change (0: nothing was ever decided).
        runs: Run controls by run id.
        breakers: Open or half-open breakers by model.
    """

    version: int = 0
    runs: Mapping[str, RunControl] = field(default_factory=lambda: {})
    breakers: Mapping[str, Breaker] = field(default_factory=lambda: {})

    @property
    def etag(self) -> str:
        """The HTTP entity tag of this version: the version in double quotes."""
        return f'"{self.version}"'

    def to_dict(self, *, public: bool = False) -> dict[str, object]:
        """Return the document as JSON-ready data.

        Args:
            public: Leave out what only the collector needs (the breakers' cool-downs).

        Returns:
            The data.
        """
        breakers: dict[str, object] = {}
        for model, breaker in self.breakers.items():
            entry: dict[str, object] = {
                "state": breaker.state,
                "until": breaker.until,
                "reason": breaker.reason,
                "detection_id": breaker.detection_id,
                "provider": breaker.provider,
            }
            if not public:
                entry["cooldown_seconds"] = breaker.cooldown_seconds
            breakers[model] = entry
        runs = {run_id: run.to_dict() for run_id, run in self.runs.items()}
        return {"version": self.version, "runs": runs, "breakers": breakers}

    def to_json(self, *, public: bool = False) -> str:
        """Serialise the document.

        Args:
            public: Serve form (see :meth:`to_dict`).

        Returns:
            Compact JSON text.
        """
        return json.dumps(self.to_dict(public=public), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ControlDocument:
        """Parse a document written by :meth:`to_json`.

        Args:
            text: The JSON.

        Returns:
            The document.

        Raises:
            ValueError: It is not JSON or not a control document.
        """
        try:
            data: object = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the control document is not JSON: {exc}") from exc
        top = _object(data, "the control document")
        version = top.get("version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            raise ValueError(f"version must be a non-negative integer, got {version!r}")
        runs = {
            run_id: _run(_object(entry, f"runs[{run_id!r}]"), run_id)
            for run_id, entry in _object(top.get("runs", {}), "runs").items()
        }
        breakers = {
            model: _breaker(_object(entry, f"breakers[{model!r}]"), model)
            for model, entry in _object(top.get("breakers", {}), "breakers").items()
        }
        return cls(version, runs, breakers)


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object")
    return cast(dict[str, object], value)


def _text(entry: Mapping[str, object], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key} must be a string")
    return value


def _optional_text(entry: Mapping[str, object], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}.{key} must be a string or null")
    return value


def _number(entry: Mapping[str, object], key: str, where: str, default: float | None) -> float:
    value = entry.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{where}.{key} must be a number")
    return float(value)


def _run(entry: Mapping[str, object], run_id: str) -> RunControl:
    where = f"runs[{run_id!r}]"
    return replace(_decision(entry, where), warnings=_warnings(entry.get("warnings", []), where))


def _decision(entry: Mapping[str, object], where: str) -> RunControl:
    action = entry.get("action")
    if action not in _RUN_ACTIONS:
        raise ValueError(f"{where}.action must be one of {', '.join(_RUN_ACTIONS)}")
    return RunControl(
        action=action,
        detection_id=_text(entry, "detection_id", where),
        type=_text(entry, "type", where),
        explanation=_text(entry, "explanation", where),
        resume_checkpoint_id=_optional_text(entry, "resume_checkpoint_id", where),
        at=_number(entry, "at", where, None),
    )


def _warnings(value: object, where: str) -> tuple[RunControl, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{where}.warnings must be a list")
    warnings: list[RunControl] = []
    for index, item in enumerate(cast(list[object], value)):
        at = f"{where}.warnings[{index}]"
        warning = _decision(_object(item, at), at)
        if warning.action != "warn":
            raise ValueError(f"{at}.action must be warn")
        warnings.append(warning)
    return tuple(warnings)


def _breaker(entry: Mapping[str, object], model: str) -> Breaker:
    where = f"breakers[{model!r}]"
    state = entry.get("state")
    if state not in _BREAKER_STATES:
        raise ValueError(f"{where}.state must be one of {', '.join(_BREAKER_STATES)}")
    return Breaker(
        state=state,
        until=_number(entry, "until", where, None),
        reason=_text(entry, "reason", where),
        detection_id=_text(entry, "detection_id", where),
        provider=_optional_text(entry, "provider", where),
        cooldown_seconds=_number(entry, "cooldown_seconds", where, 0.0),
    )
