"""The route table: what the collector tells every application about routing.

A :class:`RouteTable` is published by the collector (``GET /v1/route-table``) and followed by
the instrumentation in the background. It carries the routing mode per task class, the
quality/cost/latency trade-off per task class, the statistics observed per model, the circuit
breakers in force and the learned quality predictor (an opaque JSON object here).

The utility of a candidate model is ``quality - cost_weight * cost_usd - latency_weight *
latency_s`` (:class:`Tradeoff`).

The JSON form (:meth:`RouteTable.to_json`) is compact, with sorted keys, so the same table
always gives the same text and the same :attr:`RouteTable.etag`. :meth:`RouteTable.from_json`
checks everything it reads and refuses a bad table with a
:class:`~agentmesh.core.errors.RouteTableError` naming the field; keys it does not know are
ignored (a newer collector may add some). The predictor is only checked to be a JSON object
here (parsing it takes milliseconds); an application's route table client parses it before
taking a table and refuses the table when it does not parse
(:mod:`agentmesh.router.learned.parse_ahead`).

Example:
    >>> table = RouteTable(
    ...     version=3,
    ...     modes={"triage": "enforce"},
    ...     tradeoffs={"*": Tradeoff(cost_weight=10.0)},
    ...     breakers={"gpt-4o": 100.0},
    ... )
    >>> RouteTable.from_json(table.to_json()) == table
    True
    >>> table.mode_for("triage", "shadow"), table.mode_for("chat", "shadow")
    ('enforce', 'shadow')
    >>> table.tradeoff_for("chat").cost_weight
    10.0
    >>> sorted(table.open_circuits(now=50.0)), sorted(table.open_circuits(now=150.0))
    (['gpt-4o'], [])
    >>> table.etag.startswith('"3-')
    True
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, cast

from agentmesh.core.errors import RouteTableError
from agentmesh.router.request import RouteMode

__all__ = [
    "BUNDLED_TABLE",
    "MAX_ROUTE_TABLE_BYTES",
    "ModelStats",
    "RouteTable",
    "Tradeoff",
]

MAX_ROUTE_TABLE_BYTES: Final = 16 * 1024 * 1024
"""Largest route table :meth:`RouteTable.from_json` accepts (16 MiB of JSON)."""

DEFAULT_TRADEOFF_KEY: Final = "*"
_MODES: Final[tuple[RouteMode, ...]] = ("off", "shadow", "enforce")


@dataclass(frozen=True, slots=True)
class Tradeoff:
    """How much quality a dollar and a second are worth (λ and μ).

    Attributes:
        cost_weight: Quality points given up per USD of expected cost (λ, 0 or more).
        latency_weight: Quality points given up per second of expected latency (μ, 0 or more).
    """

    cost_weight: float = 0.0
    latency_weight: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelStats:
    """What the collector observed of one model's calls.

    Attributes:
        calls: Calls seen.
        errors: Calls that failed (at most ``calls``).
        latency_p50_s: Median latency in seconds, if known.
        latency_p95_s: 95th percentile latency in seconds, if known.
        cost_mean_usd: Mean cost of a call in USD, if known.
        quality_mean: Mean explicit feedback or success (0 to 1), if known.
    """

    calls: int = 0
    errors: int = 0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    cost_mean_usd: float | None = None
    quality_mean: float | None = None

    @property
    def error_rate(self) -> float:
        """Share of calls that failed (0.0 when no call was seen)."""
        return self.errors / self.calls if self.calls > 0 else 0.0


def _modes() -> dict[str, RouteMode]:
    return {}


def _tradeoffs() -> dict[str, Tradeoff]:
    return {}


def _models() -> dict[str, ModelStats]:
    return {}


def _breakers() -> dict[str, float]:
    return {}


@dataclass(frozen=True, slots=True)
class RouteTable:
    """One version of the route table (immutable: a change makes a new one).

    Attributes:
        version: Increases on every publication (0: the bundled defaults).
        generated_at: When it was published, in seconds since the epoch.
        default_mode: Mode of task classes not in ``modes``; ``None`` keeps the application's
            own ``AGENTMESH_ROUTING_MODE``.
        modes: Routing mode (``off``, ``shadow``, ``enforce``) by task class.
        tradeoffs: Trade-off by task class; the key ``"*"`` is the default.
        models: Observed statistics by model name.
        breakers: Models whose circuit is open, with the time it stays open until (seconds
            since the epoch).
        predictor: The learned quality predictor, an opaque JSON object, or ``None``.
    """

    version: int = 0
    generated_at: float = 0.0
    default_mode: RouteMode | None = None
    modes: Mapping[str, RouteMode] = field(default_factory=_modes)
    tradeoffs: Mapping[str, Tradeoff] = field(default_factory=_tradeoffs)
    models: Mapping[str, ModelStats] = field(default_factory=_models)
    breakers: Mapping[str, float] = field(default_factory=_breakers)
    predictor: Mapping[str, object] | None = None

    def mode_for(self, task_class: str | None, default: RouteMode) -> RouteMode:
        """Return the routing mode of a task class.

        Args:
            task_class: The call's task class, if any.
            default: The application's own mode, used when the table says nothing.

        Returns:
            ``modes[task_class]``, else ``default_mode``, else ``default``.
        """
        if task_class is not None:
            mode = self.modes.get(task_class)
            if mode is not None:
                return mode
        return self.default_mode if self.default_mode is not None else default

    def tradeoff_for(self, task_class: str | None) -> Tradeoff:
        """Return the trade-off of a task class.

        Args:
            task_class: The call's task class, if any.

        Returns:
            ``tradeoffs[task_class]``, else ``tradeoffs["*"]``, else no penalty at all.
        """
        if task_class is not None:
            tradeoff = self.tradeoffs.get(task_class)
            if tradeoff is not None:
                return tradeoff
        return self.tradeoffs.get(DEFAULT_TRADEOFF_KEY, _NO_TRADEOFF)

    def open_circuits(self, now: float) -> frozenset[str]:
        """Return the models whose circuit is still open at ``now``.

        Args:
            now: Seconds since the epoch.

        Returns:
            The models listed in ``breakers`` with an ``until`` after ``now``.
        """
        return frozenset(model for model, until in self.breakers.items() if until > now)

    def to_dict(self) -> dict[str, object]:
        """Return the table as JSON-ready data (the form :meth:`to_json` writes).

        Returns:
            The data.
        """
        return {
            "version": self.version,
            "generated_at": self.generated_at,
            "default_mode": self.default_mode,
            "modes": dict(self.modes),
            "tradeoffs": {
                name: {"cost_weight": t.cost_weight, "latency_weight": t.latency_weight}
                for name, t in self.tradeoffs.items()
            },
            "models": {
                name: {
                    "calls": s.calls,
                    "errors": s.errors,
                    "latency_p50_s": s.latency_p50_s,
                    "latency_p95_s": s.latency_p95_s,
                    "cost_mean_usd": s.cost_mean_usd,
                    "quality_mean": s.quality_mean,
                }
                for name, s in self.models.items()
            },
            "breakers": dict(self.breakers),
            "predictor": dict(self.predictor) if self.predictor is not None else None,
        }

    def to_json(self) -> str:
        """Serialise the table: compact, keys sorted, the same text for the same table.

        Returns:
            The JSON text.

        Raises:
            RouteTableError: The predictor holds something JSON cannot represent (an object,
                a NaN or an infinity).
        """
        try:
            return json.dumps(
                self.to_dict(),
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
                sort_keys=True,
            )
        except (TypeError, ValueError, RecursionError) as exc:
            raise RouteTableError(f"the route table cannot be written as JSON: {exc}") from exc

    @property
    def etag(self) -> str:
        """The HTTP entity tag: ``"<version>-<16 hex digits of the SHA-256 of the JSON>"``.

        Raises:
            RouteTableError: The table cannot be written as JSON (see :meth:`to_json`).
        """
        digest = hashlib.sha256(self.to_json().encode()).hexdigest()[:16]
        return f'"{self.version}-{digest}"'

    @classmethod
    def from_json(cls, text: str | bytes) -> RouteTable:
        """Read a table written by :meth:`to_json`, checking every field.

        Missing fields take their defaults; unknown fields are ignored. The predictor is only
        checked to be a JSON object (see the module's description).

        Args:
            text: The JSON (at most :data:`MAX_ROUTE_TABLE_BYTES`).

        Returns:
            The table.

        Raises:
            RouteTableError: The text is too large, not JSON, or a field is missing its
                expected type or range; the message names the field.
        """
        size = len(text.encode() if isinstance(text, str) else text)
        if size > MAX_ROUTE_TABLE_BYTES:
            raise RouteTableError(
                f"the route table is {size} bytes; at most {MAX_ROUTE_TABLE_BYTES} are accepted"
            )
        try:
            data: object = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
            raise RouteTableError(f"the route table is not valid JSON: {exc}") from exc
        top = _object(data, "the route table")
        return cls(
            version=_count(top.get("version", 0), "the version"),
            generated_at=_seconds(top.get("generated_at", 0.0), "generated_at"),
            default_mode=_mode(top.get("default_mode"), "default_mode", optional=True),
            modes={
                name: cast("RouteMode", _mode(value, f"the mode of task class {name!r}"))
                for name, value in _named(top.get("modes", {}), "modes", "task class").items()
            },
            tradeoffs={
                name: _tradeoff(value, name)
                for name, value in _named(
                    top.get("tradeoffs", {}), "tradeoffs", "task class"
                ).items()
            },
            models={
                name: _stats(value, name)
                for name, value in _named(top.get("models", {}), "models", "model").items()
            },
            breakers={
                name: _seconds(value, f"the breaker of model {name!r}")
                for name, value in _named(top.get("breakers", {}), "breakers", "model").items()
            },
            predictor=_predictor(top.get("predictor")),
        )


_NO_TRADEOFF: Final = Tradeoff()

BUNDLED_TABLE: Final = RouteTable()
"""The table used before any is received from a collector (version 0: nothing learned)."""


# --- validation ----------------------------------------------------------------------------


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number JSON allows")


def _object(value: object, what: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise RouteTableError(f"{what} must be a JSON object, got {_kind(value)}")
    return cast("dict[str, object]", value)


def _named(value: object, what: str, key_kind: str) -> dict[str, object]:
    entries = _object(value, what)
    for name in entries:
        if not name:
            raise RouteTableError(f"{what} has an empty {key_kind} name")
    return entries


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _count(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise RouteTableError(f"{what} must be a whole number of 0 or more, got {_kind(value)}")
    return value


def _number(value: object, what: str, *, low: float = 0.0, high: float = math.inf) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        bound = "of 0 or more" if high == math.inf else f"between {low:g} and {high:g}"
        raise RouteTableError(f"{what} must be a number {bound}, got {_kind(value)}")
    return float(value)


def _optional_number(value: object, what: str, *, high: float = math.inf) -> float | None:
    return None if value is None else _number(value, what, high=high)


def _seconds(value: object, what: str) -> float:
    return _number(value, f"{what} (seconds since the epoch)")


def _mode(value: object, what: str, *, optional: bool = False) -> RouteMode | None:
    if value is None and optional:
        return None
    for mode in _MODES:
        if value == mode:
            return mode
    allowed = ", ".join(_MODES) + (" or null" if optional else "")
    raise RouteTableError(f"{what} must be one of {allowed}, got {_kind(value)}")


def _tradeoff(value: object, name: str) -> Tradeoff:
    where = f"the trade-off of task class {name!r}"
    entry = _object(value, where)
    return Tradeoff(
        cost_weight=_number(entry.get("cost_weight", 0.0), f"{where}: cost_weight"),
        latency_weight=_number(entry.get("latency_weight", 0.0), f"{where}: latency_weight"),
    )


def _stats(value: object, name: str) -> ModelStats:
    where = f"the statistics of model {name!r}"
    entry = _object(value, where)
    calls = _count(entry.get("calls", 0), f"{where}: calls")
    errors = _count(entry.get("errors", 0), f"{where}: errors")
    if errors > calls:
        raise RouteTableError(f"{where}: errors ({errors}) must not exceed calls ({calls})")
    return ModelStats(
        calls=calls,
        errors=errors,
        latency_p50_s=_optional_number(entry.get("latency_p50_s"), f"{where}: latency_p50_s"),
        latency_p95_s=_optional_number(entry.get("latency_p95_s"), f"{where}: latency_p95_s"),
        cost_mean_usd=_optional_number(entry.get("cost_mean_usd"), f"{where}: cost_mean_usd"),
        quality_mean=_optional_number(
            entry.get("quality_mean"), f"{where}: quality_mean", high=1.0
        ),
    )


def _predictor(value: object) -> Mapping[str, object] | None:
    if value is None:
        return None
    return _object(value, "the predictor")
