"""Fault types and the ground truth the generator records for each run and episode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "CROSS_RUN_TYPES",
    "EPISODE_TOLERATES",
    "FAULT_TYPES",
    "PER_RUN_TYPES",
    "TOLERATES",
    "Episode",
    "Fault",
    "RunTruth",
]

PER_RUN_TYPES: Final = (
    "handoff_loop",
    "ping_pong",
    "tool_loop",
    "stuck",
    "runaway",
    "latency_spike",
    "token_spike",
    "cost_spike",
    "error_cascade",
    "context_loss",
)
"""Faults of one run."""

CROSS_RUN_TYPES: Final = ("rate_limit_storm", "provider_outage")
"""Faults of a provider's model over a time range, seen across runs."""

FAULT_TYPES: Final = (
    "handoff_loop",
    "ping_pong",
    "tool_loop",
    "stuck",
    "runaway",
    "latency_spike",
    "token_spike",
    "cost_spike",
    "error_cascade",
    "rate_limit_storm",
    "provider_outage",
    "context_loss",
)
"""Every detection type of the contract, in the contract's order."""

TOLERATES: Final[dict[str, frozenset[str]]] = {
    "handoff_loop": frozenset({"runaway", "tool_loop"}),
    "ping_pong": frozenset({"runaway", "tool_loop"}),
    "tool_loop": frozenset({"runaway", "stuck"}),
    "stuck": frozenset({"latency_spike"}),
    "runaway": frozenset({"cost_spike", "stuck"}),
    "latency_spike": frozenset({"stuck"}),
    "token_spike": frozenset({"cost_spike", "runaway"}),
    "cost_spike": frozenset({"runaway"}),
    "error_cascade": frozenset(),
    "context_loss": frozenset(),
}
"""Other types a faulty run may also be flagged with, neither right nor wrong (secondary
effects: a loop costs more and repeats its tool calls, a blown-up prompt or an overpriced call
makes the run cost more, a call that crawls or an agent working on and on keeps its step open
far longer than usual)."""

EPISODE_TOLERATES: Final = frozenset({"error_cascade", "latency_spike", "stuck"})
"""Per-run types a run hit by a storm or an outage may be flagged with (its calls failed or
crawled)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault injected into a run.

    Attributes:
        type: The detection type that should report it.
        run_id: The run.
        trace_id: Its trace.
        span_id: The span at which it becomes detectable (for ``stuck``: the start marker of
            the step that never ends in time).
        at_ns: Virtual time of that span's end (marker: its start).
        note: What was injected, for people.
    """

    type: str
    run_id: str
    trace_id: str
    span_id: str
    at_ns: int
    note: str


@dataclass(frozen=True, slots=True)
class Episode:
    """A storm of 429s or an outage of one provider's model over a time range.

    Attributes:
        id: ``ep-<n>``.
        type: ``rate_limit_storm`` or ``provider_outage``.
        provider: ``gen_ai.provider.name``.
        model: Requested model name.
        response_model: Response model name.
        start_ns: Virtual start.
        end_ns: Virtual end.
        error_rate: Share of the calls that fail during the episode.
        slowdown: Latency factor during the episode (1 for a storm).
        first_span_id: The first failed (or slowed) call in it, once generated.
        calls: Calls made to the model during it.
        failed_calls: How many of them failed.
    """

    id: str
    type: str
    provider: str
    model: str
    response_model: str
    start_ns: int
    end_ns: int
    error_rate: float
    slowdown: float
    first_span_id: str | None = None
    calls: int = 0
    failed_calls: int = 0


@dataclass(slots=True)
class RunTruth:
    """What a run is, for scoring.

    Attributes:
        run_id: ``agentmesh.run.id``.
        trace_id: Its trace.
        workflow: Workflow name.
        start_ns: Virtual start.
        fault: The fault injected, or ``None``.
        episodes: Ids of the episodes whose model it called during the episode.
        noise: Legitimate oddities it contains (retries, polls, revisits…), for the tests.
        cost_usd: What it cost.
        spans: Spans it emitted (start markers included).
        planned: The fault planned for it; when the run died before the fault was in place
            (``fault`` is ``None``), the fault's type is tolerated and the run is not clean.
    """

    run_id: str
    trace_id: str
    workflow: str
    start_ns: int
    fault: Fault | None = None
    episodes: set[str] = field(default_factory=lambda: set[str]())
    noise: set[str] = field(default_factory=lambda: set[str]())
    cost_usd: float = 0.0
    spans: int = 0
    planned: str | None = None

    @property
    def clean(self) -> bool:
        """No fault injected and no episode met: any detection on it is a false alarm."""
        return self.fault is None and self.planned is None and not self.episodes

    def tolerated(self) -> frozenset[str]:
        """Detection types neither right nor wrong on this run.

        Returns:
            The types.
        """
        if self.fault is not None:
            tolerated = TOLERATES[self.fault.type]
        elif self.planned is not None:  # partly injected
            tolerated = TOLERATES[self.planned] | {self.planned}
        else:
            tolerated = frozenset[str]()
        return tolerated | EPISODE_TOLERATES if self.episodes else tolerated
