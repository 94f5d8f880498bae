"""The labelled stream: many runs interleaved on a virtual clock, faults at known spans.

Runs arrive as a Poisson process (``runs_per_second``), each running one of the workflows of
:mod:`_detection.world` (weights as there), simulated by :class:`_detection.runsim.RunSim`.
The first ``warmup_s`` seconds are clean (baselines learn); after them, every so many runs one
carries a per-run fault, the types taking turns until each has ``faults_per_type``; a fault
that could not be injected (the run died of an outage first) goes to the next run. Storms and
outages (``episodes_per_type`` of each) hit one model each for 30-70 s, spread over the same
period, never two at once on one model.

Each app exports what ended (and start markers of what began) every ``export_ms`` milliseconds
of virtual time, at most 512 spans a request, each app with its own phase: the stream is those
requests in the order they are sent.
"""

from __future__ import annotations

import gc
import hashlib
import random
import statistics
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from _detection.runsim import EpisodeState, Plan, RunSim
from _detection.truth import PER_RUN_TYPES, Episode, RunTruth
from _detection.world import MODELS, WORKFLOWS, AgentProfile, Workflow
from agentmesh.collector.model import SpanRecord

__all__ = ["FULL", "QUICK", "Batch", "Dataset", "Scenario", "generate"]

EPOCH_NS = 1_798_761_600_000_000_000  # 2027-01-01T00:00:00Z
_S = 1_000_000_000
_MAX_REQUEST_SPANS = 512
_EPISODE_MODELS = (
    "gpt-4o-mini",
    "claude-3-5-sonnet-latest",
    "gpt-4o",
    "claude-3-5-haiku-latest",
    "meta-llama/llama-3.1-70b-instruct",
)

_COMPATIBLE: dict[str, tuple[str, ...]] = {
    "handoff_loop": ("support_ticket", "concierge", "doc_ingest"),
    "ping_pong": ("research_report", "support_ticket", "concierge"),
}


@dataclass(frozen=True, slots=True)
class Scenario:
    """How much to generate.

    Attributes:
        seed: Seed of everything.
        runs: Runs in all.
        faults_per_type: Faulty runs per per-run fault type.
        episodes_per_type: Storms, and outages.
        runs_per_second: Arrival rate.
        warmup_s: Clean seconds at the start.
        tail_s: Seconds at the end with no new fault or episode (room to detect the last ones).
        export_ms: Export interval of the apps.
    """

    seed: int = 20_261_202
    runs: int = 9_000
    faults_per_type: int = 40
    episodes_per_type: int = 32
    runs_per_second: float = 3.0
    warmup_s: float = 150.0
    tail_s: float = 90.0
    export_ms: int = 200


QUICK = Scenario(runs=1_800, faults_per_type=8, episodes_per_type=5)
"""``--quick``: about 75,000 spans."""

FULL = Scenario()
"""The default run: about 380,000 spans."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One export request of one app.

    Attributes:
        export_ns: Virtual time it is sent.
        service: The app.
        spans: Its spans.
    """

    export_ns: int
    service: str
    spans: list[SpanRecord]


@dataclass(slots=True)
class Dataset:
    """The stream and its ground truth.

    Attributes:
        scenario: What was asked for.
        batches: Export requests in the order they are sent.
        runs: Every run's truth, by run id.
        traces: Run id by trace id.
        episodes: Storms and outages.
        span_count: Spans in all (start markers included).
        start_ns: Virtual time of the first run.
        end_ns: Virtual time of the last request.
        span_models: Response model of each model call, by span id.
    """

    scenario: Scenario
    batches: list[Batch]
    runs: dict[str, RunTruth]
    traces: dict[str, str]
    episodes: list[Episode]
    span_count: int
    start_ns: int
    end_ns: int
    span_models: dict[str, str] = field(default_factory=lambda: dict[str, str]())


def generate(scenario: Scenario) -> Dataset:
    """Generate the stream (deterministic for a scenario).

    Args:
        scenario: Sizes and seed.

    Returns:
        The dataset.
    """
    enabled = gc.isenabled()
    gc.disable()  # hundreds of thousands of acyclic objects: collections would only cost time
    try:
        return _generate(scenario)
    finally:
        if enabled:
            gc.enable()


def _generate(scenario: Scenario) -> Dataset:
    rng = random.Random(f"{scenario.seed}/arrivals")
    arrivals: list[int] = []
    t = 0.0
    for _ in range(scenario.runs):
        t += rng.expovariate(scenario.runs_per_second)
        arrivals.append(EPOCH_NS + int(t * _S))
    horizon_s = t
    episodes = _episodes(scenario, horizon_s)
    by_model: dict[str, list[EpisodeState]] = defaultdict(list)
    for episode in episodes:
        by_model[episode.model].append(episode)

    def active(model: str, at_ns: int) -> EpisodeState | None:
        for episode in by_model.get(model, ()):
            if episode.start_ns <= at_ns < episode.end_ns:
                return episode
        return None

    warm_ns = EPOCH_NS + int(scenario.warmup_s * _S)
    last_fault_ns = EPOCH_NS + int((horizon_s - scenario.tail_s) * _S)
    eligible = sum(1 for a in arrivals if warm_ns <= a < last_fault_ns)
    total = scenario.faults_per_type * len(PER_RUN_TYPES)
    stride = max(1, int(eligible / (total * 1.6))) if total else 0
    queue: deque[str] = deque()
    for _ in range(scenario.faults_per_type):
        order = list(PER_RUN_TYPES)
        rng.shuffle(order)
        queue.extend(order)
    weights = [w.weight for w in WORKFLOWS]
    costs: dict[str, list[float]] = defaultdict(list)
    typical: dict[str, float] = {}
    runs: dict[str, RunTruth] = {}
    emitted: list[tuple[int, str, int, SpanRecord]] = []
    seen_eligible = 0
    seq = 0
    for index, start in enumerate(arrivals):
        run_rng = random.Random(f"{scenario.seed}/run/{index}")
        fault: str | None = None
        if warm_ns <= start < last_fault_ns:
            seen_eligible += 1
            if queue and stride and seen_eligible % stride == 0:
                fault = queue.popleft()
        workflow = _choose_workflow(run_rng, fault, weights)
        sim = RunSim(run_rng, workflow, index, start, active, typical)
        plan = _plan(run_rng, workflow, fault)
        truth = sim.run(plan)
        if fault is not None and truth.fault is None:
            queue.appendleft(fault)  # not injected (the run died first): the next run takes it
        runs[truth.run_id] = truth
        if truth.clean and not truth.noise & {"agent_error"}:
            history = costs[workflow.name]
            history.append(truth.cost_usd)
            if len(history) >= 30 and len(history) % 10 == 0:
                typical[workflow.name] = statistics.median(history[-500:])
        service = workflow.service
        for emit_ns, span in sim.out:
            emitted.append((emit_ns, service, seq, span))
            seq += 1
    batches = _batches(emitted, scenario.export_ms)
    span_models: dict[str, str] = {}
    for _, _, _, span in emitted:
        model = span.str_attr("gen_ai.response.model") or span.str_attr("gen_ai.request.model")
        if model is not None:
            span_models[span.span_id] = model
    return Dataset(
        scenario=scenario,
        batches=batches,
        runs=runs,
        traces={truth.trace_id: run_id for run_id, truth in runs.items()},
        episodes=[_frozen(e) for e in episodes],
        span_count=len(emitted),
        start_ns=EPOCH_NS,
        end_ns=batches[-1].export_ns if batches else EPOCH_NS,
        span_models=span_models,
    )


def _frozen(state: EpisodeState) -> Episode:
    model = MODELS[state.model]
    return Episode(
        id=state.id,
        type=state.type,
        provider=model.provider,
        model=model.name,
        response_model=model.response,
        start_ns=state.start_ns,
        end_ns=state.end_ns,
        error_rate=state.error_rate,
        slowdown=state.slowdown,
        first_span_id=state.first_span_id,
        calls=state.calls,
        failed_calls=state.failed_calls,
    )


def _episodes(scenario: Scenario, horizon_s: float) -> list[EpisodeState]:
    """Storms and outages, alternating, spread evenly after the warm-up, models in turn."""
    rng = random.Random(f"{scenario.seed}/episodes")
    count = 2 * scenario.episodes_per_type
    if count == 0:
        return []
    window = max(30.0, horizon_s - scenario.warmup_s - scenario.tail_s - 60.0)
    slot = window / count
    out: list[EpisodeState] = []
    for i in range(count):
        type_ = "rate_limit_storm" if i % 2 == 0 else "provider_outage"
        model = _EPISODE_MODELS[(i // 2 + i) % len(_EPISODE_MODELS)]
        start_s = scenario.warmup_s + slot * (i + rng.uniform(0.0, 0.3))
        if type_ == "rate_limit_storm":
            duration = rng.uniform(30, 60)
            error_rate, slowdown, timeouts = rng.uniform(0.5, 0.85), 1.0, False
        elif rng.random() < 0.5:  # hard outage: most calls fail
            duration = rng.uniform(35, 70)
            error_rate, slowdown, timeouts = rng.uniform(0.6, 0.95), 1.0, rng.random() < 0.3
        else:  # brownout: everything crawls, some calls fail
            duration = rng.uniform(35, 70)
            error_rate, slowdown, timeouts = rng.uniform(0.1, 0.25), rng.uniform(4, 8), False
        start_ns = EPOCH_NS + int(start_s * _S)
        out.append(
            EpisodeState(
                id=f"ep-{i:03d}",
                type=type_,
                model=model,
                start_ns=start_ns,
                end_ns=start_ns + int(duration * _S),
                error_rate=error_rate,
                slowdown=slowdown,
                timeouts=timeouts,
            )
        )
    # one model never has two episodes at once (push a later one past the earlier one's end)
    last_end: dict[str, int] = {}
    fixed: list[EpisodeState] = []
    for episode in sorted(out, key=lambda e: e.start_ns):
        gap = 120 * _S
        earliest = last_end.get(episode.model, 0) + gap
        if episode.start_ns < earliest:
            shift = earliest - episode.start_ns
            episode = replace(
                episode, start_ns=episode.start_ns + shift, end_ns=episode.end_ns + shift
            )
        last_end[episode.model] = episode.end_ns
        fixed.append(episode)
    return fixed


def _choose_workflow(rng: random.Random, fault: str | None, weights: list[float]) -> Workflow:
    allowed = _COMPATIBLE.get(fault or "", ())
    if not allowed:
        return rng.choices(WORKFLOWS, weights)[0]
    candidates = [w for w in WORKFLOWS if w.name in allowed]
    return rng.choices(candidates, [w.weight for w in candidates])[0]


def _plan(rng: random.Random, workflow: Workflow, fault: str | None) -> Plan:
    """The visits of a run (with a fault's changes) and where the fault goes."""
    name = workflow.name
    visits = _clean_visits(rng, name)
    loop_span = -1
    if fault == "handoff_loop":
        repeats = rng.randint(5, 6)
        prefix, cycle, suffix = {
            "support_ticket": (
                ["intake", "classifier"],
                ["retriever", "responder", "qa_reviewer"],
                [],
            ),
            "concierge": (["triage"], ["billing", "tech_support", "sales"], []),
            "doc_ingest": ([], ["extractor", "normalizer", "validator"], ["loader"]),
        }[name]
        visits = prefix + cycle * repeats + suffix
        loop_span = len(prefix) + 4 * len(cycle) - 1
    elif fault == "ping_pong":
        repeats = rng.randint(5, 7)
        prefix, pair, suffix = {
            "research_report": ([], ["supervisor", "researcher"], ["supervisor", "writer"]),
            "support_ticket": (
                ["intake", "classifier", "retriever"],
                ["responder", "qa_reviewer"],
                [],
            ),
            "concierge": (["triage"], ["billing", "tech_support"], []),
        }[name]
        visits = prefix + pair * repeats + suffix
        loop_span = len(prefix) + 4 * len(pair) - 1
    elif fault == "error_cascade" and name == "concierge":
        visits = ["triage", "billing", "tech_support", "sales"]
    plan = Plan(visits, fault=fault, loop_span=loop_span)
    if fault is None or fault in ("handoff_loop", "ping_pong"):
        plan.fault_visit = loop_span
        return plan
    agents = [
        (i, workflow.agent(v.lstrip("#"))) for i, v in enumerate(visits) if not v.startswith("@")
    ]
    later = [(i, p) for i, p in agents if i >= 1]
    if fault == "tool_loop":
        choices = [i for i, p in agents if p.tools]
    elif fault == "runaway":
        best = max(agents, key=lambda item: _call_cost(item[1]))
        choices = [best[0]]
        budget = workflow.budget_usd > 0
        plan.extra["factor"] = rng.uniform(1.6, 2.5) if budget else rng.uniform(10, 16)
    elif fault in ("latency_spike", "token_spike", "cost_spike"):
        choices = [i for i, p in later if p.model is not None]
    elif fault == "error_cascade":
        choices = [i for i, _ in later if len({p.name for j, p in agents if j >= i}) >= 3][:2]
        if not choices:
            choices = [agents[0][0]]
    else:  # stuck, context_loss
        choices = [i for i, _ in later]
    plan.fault_visit = rng.choice(choices)
    return plan


def _call_cost(profile: AgentProfile) -> float:
    if profile.model is None:
        return 0.0
    model = MODELS[profile.model]
    cached = int(profile.input_tokens * profile.cached_share)
    return model.cost(profile.input_tokens, cached, profile.output_tokens)


def _clean_visits(rng: random.Random, workflow: str) -> list[str]:
    """A healthy run's visits, with legitimate revisits now and then."""
    if workflow == "research_report":
        workers = ["researcher", "analyst", "writer"]
        rng.shuffle(workers)
        if workers[-1] != "writer":
            workers.remove("writer")
            workers.append("writer")
        if rng.random() < 0.25:  # back to research once the analysis is in
            workers.insert(2, "researcher")
        if rng.random() < 0.2:
            workers.remove("analyst")
        visits = ["supervisor"]
        for worker in workers:
            visits += [worker, "supervisor"]
        return visits
    if workflow == "support_ticket":
        visits = ["intake", "classifier", "retriever", "responder", "qa_reviewer"]
        if rng.random() < 0.25:  # QA sends the answer back once
            visits.append("responder")
        return visits
    if workflow == "concierge":
        specialists = ["billing", "tech_support", "sales"]
        first = rng.choice(specialists)
        visits = ["triage", first]
        roll = rng.random()
        if roll < 0.35:  # the specialist hands over to another one
            visits.append(rng.choice([s for s in specialists if s != first]))
        elif roll < 0.6:  # back to triage, then to another specialist
            visits += ["triage", rng.choice([s for s in specialists if s != first])]
        return visits
    if workflow == "code_review":
        visits = ["planner", "@analysis", "#lint", "#test_runner", "#security_scan", "reviewer"]
        if rng.random() < 0.2:  # the reviewer asks the planner, then finishes
            visits += ["planner", "reviewer"]
        return [*visits, "summarizer"]
    visits = ["extractor", "normalizer", "validator"]
    if rng.random() < 0.2:  # validation sends the record back for one more normalisation
        visits.append("normalizer")
    return [*visits, "loader"]


def _phase(service: str, export_ms: int) -> int:
    digest = hashlib.sha256(service.encode()).digest()
    return int.from_bytes(digest[:4], "little") % (export_ms * 1_000_000)


def _batches(emitted: Sequence[tuple[int, str, int, SpanRecord]], export_ms: int) -> list[Batch]:
    """Group spans into the export requests their apps send."""
    interval = export_ms * 1_000_000
    groups: dict[tuple[int, str], list[tuple[int, int, SpanRecord]]] = defaultdict(list)
    phases: dict[str, int] = {}
    for emit_ns, service, seq, span in emitted:
        phase = phases.get(service)
        if phase is None:
            phase = phases[service] = _phase(service, export_ms)
        offset = emit_ns - EPOCH_NS - phase
        flush = EPOCH_NS + phase + (-(-offset // interval)) * interval
        groups[(flush, service)].append((emit_ns, seq, span))
    out: list[Batch] = []
    for (flush, service), items in sorted(groups.items()):
        items.sort(key=lambda item: (item[0], item[1]))
        spans = [span for _, _, span in items]
        for i in range(0, len(spans), _MAX_REQUEST_SPANS):
            out.append(Batch(flush, service, spans[i : i + _MAX_REQUEST_SPANS]))
    return out
