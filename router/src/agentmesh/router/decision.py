"""A routing decision: which model a call goes to, among which candidates, and why.

A :class:`RouteDecision` is immutable. It becomes span attributes (``agentmesh.route.*``, see
:meth:`RouteDecision.span_attributes`) on the provider call's span and one JSON line in the
decision log (:meth:`RouteDecision.to_json`), which carries the full context: task class and
the prompt features the policy saw.

Example:
    >>> from agentmesh.router.request import RouteRequest
    >>> d = RouteDecision.new(
    ...     RouteRequest("openai", "gpt-4o"), "pass_through", ("gpt-4o", "gpt-4o-mini"),
    ...     (1.0, 0.0), "gpt-4o", "requested model",
    ... )
    >>> d.span_attributes()["agentmesh.route.candidates"]
    ('gpt-4o', 'gpt-4o-mini')
    >>> d.fallbacks
    ('gpt-4o-mini',)
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, fields, replace
from typing import cast

from agentmesh.core.semconv import (
    AGENTMESH_ROUTE_CANDIDATES,
    AGENTMESH_ROUTE_CHOSEN,
    AGENTMESH_ROUTE_DECISION_ID,
    AGENTMESH_ROUTE_FEATURES,
    AGENTMESH_ROUTE_MODE,
    AGENTMESH_ROUTE_POLICY,
    AGENTMESH_ROUTE_REASON,
    AGENTMESH_ROUTE_REQUESTED_MODEL,
    AGENTMESH_ROUTE_SCORES,
    AGENTMESH_ROUTE_TABLE_VERSION,
    AGENTMESH_ROUTE_TASK_CLASS,
)
from agentmesh.router.request import EMPTY_FEATURES, PromptFeatures, RouteMode, RouteRequest

__all__ = ["RouteAttributeValue", "RouteDecision", "new_decision_id"]

RouteAttributeValue = str | int | tuple[str, ...] | tuple[float, ...]
"""Type of the values of :meth:`RouteDecision.span_attributes` (all valid span attributes)."""


_now = time.time
_bits = random.getrandbits  # reseeded in forked children by the random module itself
_ALL_OPEN = "circuit open for every candidate"


def new_decision_id() -> str:
    """Return a new random decision id (16 hex characters; not a secret).

    Returns:
        The id.
    """
    return f"{_bits(64):016x}"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """What a policy decided for one call.

    Attributes:
        decision_id: Unique id; travels in baggage as ``agentmesh.route.decision_id``.
        policy: Name of the policy that decided.
        mode: ``shadow`` (recorded only) or ``enforce`` (applied).
        requested_model: The model the application asked for.
        candidates: Models considered, best first: the chosen one, then the fallbacks in the
            order they are tried.
        scores: Score of each candidate, in candidate order (rule-based policies score the
            chosen model 1.0 and the others 0.0).
        chosen: The model chosen.
        reason: Why, for people.
        task_class: The task class the policy saw, if any.
        features: The prompt features the policy saw.
        timestamp: When the decision was made, in seconds since the epoch.
        avoided: Candidates passed over because their circuit breaker was open (listed last
            in ``candidates``; a fallback after an error does not try them either).
        cluster: The prompt cluster a learned policy placed the call in, if any.
        table_version: Version of the route table the decision used (0: bundled defaults).
    """

    decision_id: str
    policy: str
    mode: RouteMode
    requested_model: str
    candidates: tuple[str, ...]
    scores: tuple[float, ...]
    chosen: str
    reason: str
    task_class: str | None = None
    features: PromptFeatures = EMPTY_FEATURES
    timestamp: float = 0.0
    avoided: tuple[str, ...] = ()
    cluster: int | None = None
    table_version: int = 0

    @classmethod
    def new(
        cls,
        request: RouteRequest,
        policy: str,
        candidates: tuple[str, ...],
        scores: tuple[float, ...],
        chosen: str,
        reason: str,
        *,
        cluster: int | None = None,
        table_version: int = 0,
    ) -> RouteDecision:
        """Build a decision for a request, with a fresh id and the current time.

        Args:
            request: The request decided on (mode, requested model, task class, features).
            policy: The deciding policy's name.
            candidates: Models considered, chosen first.
            scores: One score per candidate.
            chosen: The model chosen.
            reason: Why.
            cluster: The prompt cluster a learned policy placed the call in.
            table_version: The route table's version (0: the request's).

        Returns:
            The decision.

        Raises:
            ValueError: ``scores`` and ``candidates`` differ in length.
        """
        if len(scores) != len(candidates):
            raise ValueError(f"{len(candidates)} candidates but {len(scores)} scores")
        table_version = table_version or request.table_version
        if cls is not RouteDecision:  # a subclass may have fields of its own
            return cls(
                new_decision_id(), policy, request.mode, request.requested_model, candidates,
                scores, chosen, reason, request.task_class, request.features, _now(), (),
                cluster, table_version,
            )  # fmt: skip
        # This runs before every provider call: the slots are filled directly (0.65 µs), not
        # through the frozen dataclass's __init__ (1.3 µs, one object.__setattr__ per field).
        d = _new(RouteDecision)
        _set_decision_id(d, new_decision_id())
        _set_policy(d, policy)
        _set_mode(d, request.mode)
        _set_requested_model(d, request.requested_model)
        _set_candidates(d, candidates)
        _set_scores(d, scores)
        _set_chosen(d, chosen)
        _set_reason(d, reason)
        _set_task_class(d, request.task_class)
        _set_features(d, request.features)
        _set_timestamp(d, _now())
        _set_avoided(d, ())
        _set_cluster(d, cluster)
        _set_table_version(d, table_version)
        return d

    def avoiding(self, open_circuits: AbstractSet[str]) -> RouteDecision:
        """Return the decision with the models whose circuit is open passed over.

        When the chosen model's circuit is open, the next candidate whose circuit is not
        becomes the choice (reason ``circuit open for <model>``). Passed-over candidates move
        to the end of ``candidates`` (their scores with them) and are listed in ``avoided``.
        When every candidate's circuit is open, the choice stands (there is nothing better)
        and the reason says so. Applying it twice changes nothing more.

        Args:
            open_circuits: Models whose circuit breaker is open now.

        Returns:
            The decision (``self`` when no candidate is concerned); same id and time.

        Example:
            >>> from agentmesh.router.request import RouteRequest
            >>> d = RouteDecision.new(
            ...     RouteRequest("openai", "gpt-4o"), "pass_through",
            ...     ("gpt-4o", "gpt-4o-mini", "gpt-4.1"), (1.0, 0.0, 0.0),
            ...     "gpt-4o", "requested model",
            ... ).avoiding({"gpt-4o"})
            >>> d.chosen, d.reason
            ('gpt-4o-mini', 'circuit open for gpt-4o')
            >>> d.candidates, d.fallbacks, d.avoided
            (('gpt-4o-mini', 'gpt-4.1', 'gpt-4o'), ('gpt-4.1',), ('gpt-4o',))
        """
        if not open_circuits:
            return self
        avoided = tuple(m for m in self.candidates if m in open_circuits)
        if not avoided or avoided == self.avoided:
            return self
        usable = [m for m in self.candidates if m not in open_circuits]
        if not usable:
            if _ALL_OPEN in self.reason:
                return self
            return replace(self, reason=f"{self.reason}; {_ALL_OPEN}")
        chosen, reason = self.chosen, self.reason
        if chosen in open_circuits:
            chosen, reason = usable[0], f"circuit open for {self.chosen}"
        head = [chosen] if chosen in usable else []
        order = [*head, *(m for m in usable if m != chosen), *avoided]
        score = dict(zip(self.candidates, self.scores, strict=True))
        return replace(
            self,
            candidates=tuple(order),
            scores=tuple(score.get(m, 0.0) for m in order),
            chosen=chosen,
            reason=reason,
            avoided=avoided,
        )

    def features_json(self) -> str:
        """Return the content-free features (and the cluster) as compact JSON.

        Returns:
            The JSON text (``agentmesh.route.features``).
        """
        return json.dumps(self._features_record(), separators=(",", ":"))

    def _features_record(self) -> dict[str, object]:
        """The features as recorded everywhere: by name, with the cluster when there is one."""
        features: dict[str, object] = dict(self.features.as_dict())
        if self.cluster is not None:
            features["cluster"] = self.cluster
        return features

    @property
    def fallbacks(self) -> tuple[str, ...]:
        """The candidates after the chosen one, in the order they are tried (not the avoided)."""
        return tuple(m for m in self.candidates if m != self.chosen and m not in self.avoided)

    def span_attributes(self) -> dict[str, RouteAttributeValue]:
        """Return the decision as ``agentmesh.route.*`` span attributes.

        Returns:
            A new dict.
        """
        attributes: dict[str, RouteAttributeValue] = {
            AGENTMESH_ROUTE_DECISION_ID: self.decision_id,
            AGENTMESH_ROUTE_POLICY: self.policy,
            AGENTMESH_ROUTE_MODE: self.mode,
            AGENTMESH_ROUTE_REQUESTED_MODEL: self.requested_model,
            AGENTMESH_ROUTE_CANDIDATES: self.candidates,
            AGENTMESH_ROUTE_SCORES: self.scores,
            AGENTMESH_ROUTE_CHOSEN: self.chosen,
            AGENTMESH_ROUTE_REASON: self.reason,
            AGENTMESH_ROUTE_FEATURES: self.features_json(),
            AGENTMESH_ROUTE_TABLE_VERSION: self.table_version,
        }
        if self.task_class is not None:
            attributes[AGENTMESH_ROUTE_TASK_CLASS] = self.task_class
        return attributes

    def as_dict(self) -> dict[str, object]:
        """Return the decision as a JSON-ready dict (the decision log's record).

        ``features`` has the shape of :meth:`features_json` (the prompt cluster inside it), as
        the collector's decision API and ``agentmesh export decisions`` give it.

        Returns:
            A new dict.
        """
        record: dict[str, object] = {
            "decision_id": self.decision_id,
            "timestamp": self.timestamp,
            "policy": self.policy,
            "mode": self.mode,
            "requested_model": self.requested_model,
            "candidates": list(self.candidates),
            "scores": list(self.scores),
            "chosen": self.chosen,
            "reason": self.reason,
            "task_class": self.task_class,
            "features": self._features_record(),
        }
        if self.avoided:
            record["avoided"] = list(self.avoided)
        if self.table_version:
            record["table_version"] = self.table_version
        return record

    def to_json(self) -> str:
        """Return the decision as one line of JSON (no newline).

        Returns:
            The JSON text.
        """
        return json.dumps(self.as_dict(), separators=(",", ":"), ensure_ascii=False)


def _slot_setter(name: str) -> Callable[[RouteDecision, object], None]:
    return cast("Callable[[RouteDecision, object], None]", RouteDecision.__dict__[name].__set__)


_new = object.__new__
_FILLED = (
    "decision_id", "policy", "mode", "requested_model", "candidates", "scores", "chosen",
    "reason", "task_class", "features", "timestamp", "avoided", "cluster", "table_version",
)  # fmt: skip
if tuple(f.name for f in fields(RouteDecision)) != _FILLED:  # a field added but not filled
    raise TypeError("RouteDecision.new must fill every field of RouteDecision, in order")
_set_decision_id = _slot_setter("decision_id")
_set_policy = _slot_setter("policy")
_set_mode = _slot_setter("mode")
_set_requested_model = _slot_setter("requested_model")
_set_candidates = _slot_setter("candidates")
_set_scores = _slot_setter("scores")
_set_chosen = _slot_setter("chosen")
_set_reason = _slot_setter("reason")
_set_task_class = _slot_setter("task_class")
_set_features = _slot_setter("features")
_set_timestamp = _slot_setter("timestamp")
_set_avoided = _slot_setter("avoided")
_set_cluster = _slot_setter("cluster")
_set_table_version = _slot_setter("table_version")
