"""One simulated run: its steps on a virtual clock, the spans it exports, the fault it carries.

A run executes its plan (a sequence of agent visits, or a nested subgraph of nodes) one step
after another; each step exports a start marker when it begins and its span when it ends, so
children end (and are exported) before their parents. Model calls fail now and then and are
retried after a backoff (a new ``chat`` span per attempt); during a storm or an outage of their
model they fail or crawl far more often. Faults change the plan (loops, ping-pong, runaway
work), one call (spikes), one handoff (lost context), one step (stuck) or the tail of the run
(a cascade of errors).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from _detection.truth import Fault, RunTruth
from _detection.world import MODELS, TOOLS, AgentProfile, Model, Tool, Workflow
from agentmesh.collector.model import SERVICE_NAME, AttributeValue, SpanKind, SpanRecord
from agentmesh.core import semconv

__all__ = ["STEP_START", "EpisodeState", "RunSim", "Stop"]

STEP_START = "agentmesh.step.start"
"""Name of a start marker span."""

_MS = 1_000_000
_SCOPE = "agentmesh.instrumentation"
_FAN_OUT = frozenset({"web_search", "vector_search", "search_docs"})
_SPIKES = frozenset({"latency_spike", "token_spike", "cost_spike"})


@dataclass(slots=True)
class EpisodeState:
    """A storm or outage while runs are generated (counts calls as they happen).

    Attributes:
        id: Episode id.
        type: ``rate_limit_storm`` or ``provider_outage``.
        model: Requested model name.
        start_ns: Virtual start.
        end_ns: Virtual end.
        error_rate: Share of calls failing.
        slowdown: Latency factor.
        timeouts: Whether failures are client timeouts (an outage that hangs) rather than 5xx.
        first_span_id: The first call it hit.
        calls: Calls during it.
        failed_calls: Failed calls during it.
    """

    id: str
    type: str
    model: str
    start_ns: int
    end_ns: int
    error_rate: float
    slowdown: float
    timeouts: bool = False
    first_span_id: str | None = None
    calls: int = 0
    failed_calls: int = 0


class Stop(Exception):  # noqa: N818 - control flow, not an error
    """Ends a run early: an error that aborts it, or a step that hangs.

    Args:
        error_type: ``error.type`` the open steps end with (``None``: they never end).
        at_ns: When they end.
    """

    def __init__(self, error_type: str | None, at_ns: int) -> None:
        super().__init__(error_type)
        self.error_type = error_type
        self.at_ns = at_ns


@dataclass(slots=True)
class Plan:
    """What a run will do and which fault it carries.

    Attributes:
        visits: Agent (or subgraph) visits in order; a subgraph is ``"@analysis"`` followed by
            its nodes' names prefixed with ``"#"``.
        fault: Fault type to inject, if any.
        fault_visit: Index in ``visits`` where it is injected.
        loop_span: Visit index at which a loop or ping-pong becomes detectable.
        extra: Parameters of the fault.
    """

    visits: list[str]
    fault: str | None = None
    fault_visit: int = -1
    loop_span: int = -1
    extra: dict[str, float] = field(default_factory=lambda: dict[str, float]())


def _varied(rng: random.Random, sigma: float) -> float:
    """A log-normal factor around 1, kept within 0.4x-2.5x (token counts vary about 2x)."""
    return min(2.5, max(0.4, math.exp(rng.gauss(0.0, sigma))))


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class RunSim:
    """Simulates one run and collects its spans with their export times.

    Args:
        rng: The run's own random source (derived from the seed and the run's index).
        workflow: What it runs.
        run_index: Its index (names the run).
        start_ns: Virtual start.
        episodes: Lookup of the storm or outage hitting a model at a time.
        typical_costs: Observed median cost of clean runs per workflow (sizes runaways).
    """

    def __init__(
        self,
        rng: random.Random,
        workflow: Workflow,
        run_index: int,
        start_ns: int,
        episodes: Callable[[str, int], EpisodeState | None],
        typical_costs: dict[str, float],
    ) -> None:
        self.rng = rng
        self.wf = workflow
        self.trace_id = f"{rng.getrandbits(128) | (1 << 127):032x}"
        self.run_id = f"run-{run_index:06d}"
        self.t = start_ns
        self.out: list[tuple[int, SpanRecord]] = []
        self._episodes = episodes
        self._typical = typical_costs
        self.truth = RunTruth(self.run_id, self.trace_id, workflow.name, start_ns)
        self.budget: float | None = None
        self.plan = Plan([])
        self._visit_index = -1
        self._identical = 0
        self._cascade_agents: list[str] = []
        self._fault_done = False
        self._pending_spike: str | None = None
        self._resource: dict[str, AttributeValue] = {SERVICE_NAME: workflow.service}

    # --- ids, attributes, spans ------------------------------------------------------------

    def _id(self) -> str:
        return f"{self.rng.getrandbits(64) | (1 << 62):016x}"

    def _run_attrs(self) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {
            semconv.AGENTMESH_RUN_ID: self.run_id,
            semconv.AGENTMESH_RUN_TASK_CLASS: self.wf.task_class,
        }
        if self.budget is not None:
            attrs[semconv.AGENTMESH_RUN_BUDGET_USD] = self.budget
        return attrs

    def _span(
        self,
        span_id: str,
        parent: str | None,
        name: str,
        start: int,
        end: int,
        attrs: dict[str, AttributeValue],
        *,
        kind: SpanKind = "internal",
        error_type: str | None = None,
        http_status: int | None = None,
        emit_at: int | None = None,
    ) -> SpanRecord:
        if error_type is not None:
            attrs[semconv.ERROR_TYPE] = error_type
            if http_status is not None:
                attrs[semconv.HTTP_RESPONSE_STATUS_CODE] = http_status
        span = SpanRecord(
            trace_id=self.trace_id,
            span_id=span_id,
            parent_span_id=parent,
            name=name,
            kind=kind,
            start_ns=start,
            end_ns=end,
            status_code="error" if error_type is not None else "unset",
            status_message=error_type or "",
            attributes=attrs,
            resource_attributes=self._resource,
            scope_name=_SCOPE,
            service_name=self.wf.service,
        )
        self.out.append((end if emit_at is None else emit_at, span))
        return span

    def _marker(self, step_id: str, name_attr: str, name: str) -> str:
        attrs = self._run_attrs()
        attrs[semconv.AGENTMESH_STEP_STARTED] = step_id
        attrs[name_attr] = name
        attrs[semconv.GEN_AI_WORKFLOW_NAME] = self.wf.name
        marker_id = self._id()
        self._span(marker_id, step_id, STEP_START, self.t, self.t, attrs)
        return marker_id

    def _advance_ms(self, median_ms: float, sigma: float) -> int:
        ms = median_ms * math.exp(self.rng.gauss(0.0, sigma))
        self.t += int(ms * _MS)
        return int(ms * _MS)

    # --- the run ----------------------------------------------------------------------------

    def run(self, plan: Plan) -> RunTruth:
        """Execute the plan and return the run's truth (the spans are in :attr:`out`).

        Args:
            plan: What to do, with the fault to inject.

        Returns:
            The run's ground truth.
        """
        self.plan = plan
        self.truth.planned = plan.fault
        wf = self.wf
        if (plan.fault == "runaway" and wf.budget_usd > 0) or (
            wf.budget_share > 0 and self.rng.random() < wf.budget_share
        ):
            self.budget = wf.budget_usd
        root = self._id()
        start = self.t
        self._marker(root, semconv.GEN_AI_WORKFLOW_NAME, wf.name)
        attrs = self._run_attrs()
        attrs |= {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_WORKFLOW,
            semconv.GEN_AI_WORKFLOW_NAME: wf.name,
            semconv.AGENTMESH_FRAMEWORK: wf.framework,
        }
        name = f"{semconv.Operation.INVOKE_WORKFLOW} {wf.name}"
        self.t += int(self.rng.uniform(2, 20) * _MS)
        try:
            self._visits(root, plan.visits)
        except Stop as stop:
            if stop.error_type is not None:
                self.t = max(self.t, stop.at_ns)
                self._span(root, None, name, start, self.t, attrs, error_type=stop.error_type)
            return self._finish()
        self.t += int(self.rng.uniform(1, 10) * _MS)
        self._span(root, None, name, start, self.t, attrs)
        return self._finish()

    def _finish(self) -> RunTruth:
        self.truth.spans = len(self.out)
        return self.truth

    def _visits(self, parent: str, visits: list[str]) -> None:
        previous: str | None = None
        index = 0
        while index < len(visits):
            name = visits[index]
            if name.startswith("@"):
                first = index + 1
                index = first
                while index < len(visits) and visits[index].startswith("#"):
                    index += 1
                nodes = [node[1:] for node in visits[first:index]]
                self._subgraph(parent, name[1:], nodes, previous, first)
                previous = nodes[-1] if nodes else previous
                continue
            self._agent(parent, self.wf.agent(name), previous, index, "")
            previous = name
            index += 1
            self.t += int(self.rng.uniform(3, 40) * _MS)

    def _subgraph(
        self, parent: str, name: str, nodes: list[str], previous: str | None, first: int
    ) -> None:
        span_id = self._id()
        start = self.t
        self._marker(span_id, semconv.GEN_AI_WORKFLOW_NAME, name)
        attrs = self._run_attrs()
        attrs |= {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_WORKFLOW,
            semconv.GEN_AI_WORKFLOW_NAME: name,
            semconv.AGENTMESH_FRAMEWORK: self.wf.framework,
        }
        span_name = f"{semconv.Operation.INVOKE_WORKFLOW} {name}"
        self.t += int(self.rng.uniform(1, 5) * _MS)
        try:
            for offset, node in enumerate(nodes):
                self._agent(span_id, self.wf.agent(node), previous, first + offset, name)
                previous = node
                self.t += int(self.rng.uniform(1, 15) * _MS)
        except Stop as stop:
            if stop.error_type is not None:
                self.t = max(self.t, stop.at_ns)
                self._span(
                    span_id, parent, span_name, start, self.t, attrs, error_type=stop.error_type
                )
            raise
        self._span(span_id, parent, span_name, start, self.t, attrs)

    # --- an agent visit ---------------------------------------------------------------------

    def _agent(
        self, parent: str, profile: AgentProfile, source: str | None, visit: int, graph: str
    ) -> None:
        plan = self.plan
        span_id = self._id()
        start = self.t
        name_attr = semconv.GEN_AI_NODE_NAME if profile.node else semconv.GEN_AI_AGENT_NAME
        marker = self._marker(span_id, name_attr, profile.name)
        operation = (
            semconv.Operation.INVOKE_NODE if profile.node else semconv.Operation.INVOKE_AGENT
        )
        attrs = self._run_attrs()
        attrs |= {
            semconv.GEN_AI_OPERATION_NAME: operation,
            name_attr: profile.name,
            semconv.GEN_AI_WORKFLOW_NAME: graph or self.wf.name,
        }
        fault_here = plan.fault is not None and visit == plan.fault_visit
        if source is not None:
            lost = fault_here and plan.fault == "context_loss"
            self._handoff(attrs, source, profile.name, visit, lost=lost)
        span_name = f"{operation} {profile.name}"
        error: str | None = None
        try:
            if (
                fault_here
                and plan.fault == "stuck"
                and (profile.model is None or not profile.tools or self.rng.random() < 0.5)
            ):
                self._hang(marker, start, profile.name)
            if self._cascading(visit, profile.name):
                error = self._cascade_step(span_id, profile, visit)
            else:
                self._work(span_id, profile, fault_here, visit)
                if (
                    plan.fault is None
                    and visit > 0
                    and "agent_error" not in self.truth.noise
                    and self.rng.random() < 0.01
                ):  # one agent fails, the app carries on without it
                    error = "OutputParserException"
                    self.truth.noise.add("agent_error")
        except Stop as stop:
            if stop.error_type is not None:  # the step ends, failed: what it shows is there
                self.t = max(self.t, stop.at_ns)
                span = self._span(
                    span_id, parent, span_name, start, self.t, attrs, error_type=stop.error_type
                )
                self._agent_truth(span, visit, fault_here)
            raise
        self.t += int(self.rng.uniform(1, 8) * _MS)
        span = self._span(span_id, parent, span_name, start, self.t, attrs, error_type=error)
        self._agent_truth(span, visit, fault_here)
        if error is not None and len(self._cascade_agents) == 2:
            self._record("error_cascade", span, "second agent failing in a row")
        if error is not None and len(self._cascade_agents) >= 3:
            raise Stop(error, self.t)

    def _agent_truth(self, span: SpanRecord, visit: int, fault_here: bool) -> None:
        plan = self.plan
        if fault_here and plan.fault == "context_loss":
            self._record("context_loss", span, "received context differs from the sent one")
        if plan.loop_span == visit and plan.fault in ("handoff_loop", "ping_pong"):
            self._record(plan.fault, span, f"{plan.fault} reaches 4 repetitions here")

    def _handoff(
        self, attrs: dict[str, AttributeValue], source: str, target: str, visit: int, lost: bool
    ) -> None:
        size = int(800 * math.exp(self.rng.gauss(0.0, 0.5))) + 200
        digest = _digest(f"{self.run_id}/{visit}/{source}->{target}")
        attrs |= {
            semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME: source,
            semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME: target,
            semconv.AGENTMESH_HANDOFF_KIND: self.wf.handoff_kind,
            semconv.AGENTMESH_HANDOFF_CONTEXT_DIGEST: digest,
            semconv.AGENTMESH_HANDOFF_CONTEXT_SIZE: size,
        }
        if lost:
            attrs[semconv.AGENTMESH_HANDOFF_RECEIVED_DIGEST] = _digest(f"{digest}/truncated")
        elif self.rng.random() < 0.85:  # the framework reports what the target received
            attrs[semconv.AGENTMESH_HANDOFF_RECEIVED_DIGEST] = digest
        else:
            self.truth.noise.add("handoff_without_received_digest")

    def _work(self, agent_id: str, profile: AgentProfile, fault_here: bool, visit: int) -> None:
        plan = self.plan
        rng = self.rng
        # a revisit brings new context, so new tool arguments; a loop brings nothing new
        looping = plan.fault in ("handoff_loop", "ping_pong")
        prefix = f"{self.run_id}/{profile.name}/{'loop' if looping else visit}"
        self.t += int(rng.uniform(2, 15) * _MS)
        if profile.model is None:  # a plain node: its tools only
            for tool in profile.tools:
                if fault_here and plan.fault == "tool_loop":
                    self._tool_loop(agent_id, profile, TOOLS[tool])
                elif fault_here and plan.fault == "stuck":
                    self._tool(agent_id, TOOLS[tool], "stuck", stuck=True)
                else:
                    self._tool(agent_id, TOOLS[tool], f"{self.run_id}/{tool}")
            return
        lo, hi = profile.calls
        calls = rng.randint(lo, hi)
        if profile.tools:
            calls = max(calls, 2)
        spike = plan.fault if fault_here else None
        for i in range(calls):
            self._chat(agent_id, profile, spike if i == 0 else None)
            if profile.tools and i < calls - 1:
                tool = TOOLS[rng.choice(profile.tools)]
                if fault_here and plan.fault == "tool_loop" and i == 0:
                    self._tool_loop(agent_id, profile, tool)
                elif fault_here and plan.fault == "stuck":
                    self._tool(agent_id, tool, "stuck", stuck=True)
                elif tool.polls:
                    self._poll(agent_id, tool)
                elif tool.name in _FAN_OUT and rng.random() < 0.25:
                    self._fan_out(agent_id, tool, f"{prefix}/{i}")
                else:
                    self._tool(agent_id, tool, f"{prefix}/{i}")
                    if rng.random() < 0.05:  # the same lookup again, the same answer (a re-read)
                        self._tool(agent_id, tool, f"{prefix}/{i}")
                        self.truth.noise.add("repeated_identical_call")
        if fault_here and plan.fault == "runaway":
            self._runaway(agent_id, profile)

    def _runaway(self, agent_id: str, profile: AgentProfile) -> None:
        """Keep working (new calls, new tool arguments) until the run costs far too much."""
        typical = self._typical.get(self.wf.name, self.wf.typical_cost_usd)
        if self.budget is not None:
            target, mark = self.budget * self.plan.extra["factor"], self.budget
        else:
            target, mark = typical * self.plan.extra["factor"], typical * 5.0
        i = 0
        while self.truth.cost_usd < target and i < 400:
            before = self.truth.cost_usd
            chat = self._chat(agent_id, profile, None)
            if before <= mark < self.truth.cost_usd and chat is not None:
                self._record("runaway", chat, f"run cost passes {mark:.3f} USD here")
            if profile.tools:
                tool = TOOLS[profile.tools[i % len(profile.tools)]]
                self._tool(agent_id, tool, f"{self.run_id}/runaway/{i}")
            i += 1

    # --- model calls ------------------------------------------------------------------------

    def _chat(self, parent: str, profile: AgentProfile, spike: str | None) -> SpanRecord | None:
        """One model call, retried after failures; returns the successful attempt's span."""
        rng = self.rng
        assert profile.model is not None
        model = MODELS[profile.model]
        spike = spike or self._pending_spike
        if spike in _SPIKES:
            if self._episodes(model.name, self.t) is not None:
                self._pending_spike, spike = spike, None  # not during a storm or an outage
            else:
                self._pending_spike = None
        tokens_in = max(50, int(profile.input_tokens * _varied(rng, 0.35)))
        tokens_out = max(5, int(profile.output_tokens * _varied(rng, 0.4)))
        cached_share = min(0.95, max(0.0, profile.cached_share + rng.gauss(0.0, 0.1)))
        usual_in, usual_out = profile.input_tokens, profile.output_tokens
        typical = (
            model.first_token_ms + model.ms_per_token * usual_out + 0.03 * usual_in,
            model.cost(usual_in, int(usual_in * profile.cached_share), usual_out),
        )
        if spike == "token_spike":  # 6-12x the key's usual prompt (a huge tool result pasted)
            tokens_in = int(usual_in * rng.uniform(6, 12))
            cached_share = 0.0  # a huge new tool result: nothing cached
        last_error = "APIError"
        for attempt in range(5):
            episode = self._episodes(model.name, self.t)
            if episode is not None:
                episode.calls += 1
            failure = self._failure(episode)
            if episode is not None and (failure is not None or episode.slowdown > 1.0):
                self.truth.episodes.add(episode.id)  # the run felt it
            if failure is None:
                span = self._call(
                    parent,
                    model,
                    tokens_in,
                    cached_share,
                    tokens_out,
                    episode,
                    spike,
                    attempt,
                    typical,
                )
                if spike in _SPIKES:
                    self._record(spike, span, f"{spike} on {model.name}")
                return span
            error_type, status, latency_ms = failure
            last_error = error_type
            span = self._call_failed(parent, model, tokens_in, error_type, status, latency_ms)
            if episode is not None:
                episode.failed_calls += 1
                if episode.first_span_id is None:
                    episode.first_span_id = span.span_id
            else:
                self.truth.noise.add("transient_error_retried")
            backoff = min(8.0, 0.5 * 2**attempt) * rng.uniform(0.7, 1.3)
            self.t += int(backoff * 1e9)
        raise Stop(last_error, self.t)

    def _failure(self, episode: EpisodeState | None) -> tuple[str, int | None, float] | None:
        rng = self.rng
        if episode is not None and rng.random() < episode.error_rate:
            if episode.type == "rate_limit_storm":
                return ("RateLimitError", 429, rng.uniform(30, 200))
            if episode.timeouts:
                return ("APITimeoutError", None, rng.uniform(30_000, 60_000))
            status = rng.choice((500, 502, 503, 503, 529))
            kind = "ServiceUnavailableError" if status in (503, 529) else "InternalServerError"
            return (kind, status, rng.uniform(80, 900))
        if rng.random() < 0.012:  # a transient error, retried
            if rng.random() < 0.7:
                return ("RateLimitError", 429, rng.uniform(30, 200))
            return ("InternalServerError", 503, rng.uniform(80, 900))
        return None

    def _chat_attrs(self, model: Model) -> dict[str, AttributeValue]:
        attrs = self._run_attrs()
        attrs |= {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.CHAT,
            semconv.GEN_AI_PROVIDER_NAME: model.provider,
            semconv.GEN_AI_REQUEST_MODEL: model.name,
            semconv.SERVER_ADDRESS: model.server,
        }
        return attrs

    def _call(
        self,
        parent: str,
        model: Model,
        tokens_in: int,
        cached_share: float,
        tokens_out: int,
        episode: EpisodeState | None,
        spike: str | None,
        attempt: int,
        typical: tuple[float, float],
    ) -> SpanRecord:
        rng = self.rng
        median = model.first_token_ms + model.ms_per_token * tokens_out + 0.03 * tokens_in
        latency = median * math.exp(rng.gauss(0.0, 0.3))
        if episode is not None:
            latency *= episode.slowdown
        if spike == "latency_spike":  # 6-12x what the key usually takes, not of this draw
            latency = typical[0] * rng.uniform(6, 12) * (episode.slowdown if episode else 1.0)
        cached = int(tokens_in * cached_share)
        cost = model.cost(tokens_in, cached, tokens_out)
        if spike == "cost_spike":  # billed 6-12x the key's usual price, tokens as usual
            cost = typical[1] * rng.uniform(6, 12)
        start = self.t
        self.t += int(latency * _MS)
        attrs = self._chat_attrs(model)
        attrs |= {
            semconv.GEN_AI_RESPONSE_MODEL: model.response,
            semconv.GEN_AI_USAGE_INPUT_TOKENS: tokens_in,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: tokens_out,
            semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cached,
            semconv.AGENTMESH_COST_USD: round(cost, 8),
            semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
        }
        if attempt > 0:
            self.truth.noise.add("retried_call")
        self.truth.cost_usd += cost
        span = self._span(
            self._id(), parent, f"chat {model.name}", start, self.t, attrs, kind="client"
        )
        self.t += int(rng.uniform(1, 6) * _MS)
        return span

    def _call_failed(
        self,
        parent: str,
        model: Model,
        tokens_in: int,
        error_type: str,
        status: int | None,
        latency_ms: float,
    ) -> SpanRecord:
        start = self.t
        self.t += int(latency_ms * _MS)
        attrs = self._chat_attrs(model)
        return self._span(
            self._id(),
            parent,
            f"chat {model.name}",
            start,
            self.t,
            attrs,
            kind="client",
            error_type=error_type,
            http_status=status,
        )

    # --- tools ------------------------------------------------------------------------------

    def _tool(
        self,
        parent: str,
        tool: Tool,
        args: str,
        *,
        result: str | None = None,
        stuck: bool = False,
        can_fail: bool = True,
        fail: bool = False,
    ) -> SpanRecord:
        rng = self.rng
        span_id = self._id()
        start = self.t
        marker = self._marker(span_id, semconv.GEN_AI_TOOL_NAME, tool.name)
        attrs = self._run_attrs()
        attrs |= {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.EXECUTE_TOOL,
            semconv.GEN_AI_TOOL_NAME: tool.name,
            semconv.AGENTMESH_TOOL_ARGUMENTS_DIGEST: _digest(f"{tool.name}({args})"),
        }
        name = f"execute_tool {tool.name}"
        if stuck:
            try:
                self._hang(marker, start, tool.name)
            except Stop as stop:
                if stop.error_type is not None:
                    self._span(
                        span_id, parent, name, start, stop.at_ns, attrs, error_type=stop.error_type
                    )
                raise
        self._advance_ms(tool.median_ms, tool.sigma)
        error: str | None = None
        status: int | None = None
        if fail:
            error, status = "ToolExecutionError", None
        elif can_fail and rng.random() < tool.fail_rate:
            error, status = ("HTTPError", 404) if rng.random() < 0.6 else ("TimeoutError", None)
            self.truth.noise.add("tool_error_handled")
        else:
            attrs[semconv.AGENTMESH_TOOL_RESULT_DIGEST] = _digest(
                f"{tool.name}({args}) = {result if result is not None else args}"
            )
        return self._span(
            span_id,
            parent,
            name,
            start,
            self.t,
            attrs,
            error_type=error,
            http_status=status,
        )

    def _fan_out(self, parent: str, tool: Tool, args: str) -> None:
        """Several calls of one tool at once, each with its own arguments (parallel search)."""
        start = self.t
        end = start
        for n in range(self.rng.randint(2, 4)):
            self.t = start + int(self.rng.uniform(0, 5) * _MS)
            self._tool(parent, tool, f"{args}/q{n}")
            end = max(end, self.t)
        self.t = end
        self.truth.noise.add("parallel_calls")

    def _poll(self, parent: str, tool: Tool) -> None:
        """Ask the same status again until done: same arguments, a new result each time."""
        polls = self.rng.randint(2, 5)
        job = f"{self.run_id}/job"
        for n in range(polls):
            progress = "done" if n == polls - 1 else f"running {(n + 1) * 100 // polls}%"
            self._tool(parent, tool, job, result=progress, can_fail=False)
            if n < polls - 1:
                self.t += int(self.rng.uniform(800, 2500) * _MS)
        self.truth.noise.add("status_polls")

    def _tool_loop(self, parent: str, profile: AgentProfile, tool: Tool) -> None:
        """The same call again and again with the same answer: no new state."""
        repeats = self.rng.randint(6, 9)
        args = f"{self.run_id}/loop"
        for n in range(repeats):
            span = self._tool(parent, tool, args, result="same", can_fail=False)
            if n == 3:  # four identical calls in a row: a loop by any definition
                self._record("tool_loop", span, f"{tool.name} called {repeats}x, same result")
            if profile.model is not None:
                self._chat(parent, profile, None)
            else:
                self.t += int(self.rng.uniform(50, 300) * _MS)

    # --- stuck and cascades -----------------------------------------------------------------

    def _hang(self, marker: str, start: int, name: str) -> None:
        """The step never ends in time: the run stops; half the time it fails much later."""
        self._record_span("stuck", marker, start, f"step {name} hangs")
        if self.rng.random() < 0.5:
            raise Stop(None, 0)
        hang = int(self.rng.uniform(12, 25) * 60 * 1e9)
        self.t = start + hang
        raise Stop("TimeoutError", self.t)

    def _cascading(self, visit: int, agent: str) -> bool:
        plan = self.plan
        return plan.fault == "error_cascade" and visit >= plan.fault_visit

    def _cascade_step(self, agent_id: str, profile: AgentProfile, visit: int) -> str:
        """An agent failing on what the previous failure left it (or the first failure)."""
        first = not self._cascade_agents
        if profile.model is not None and not first:
            self._chat(agent_id, profile, None)
        if first:
            if profile.tools:
                tool = TOOLS[profile.tools[0]]
                self._tool(agent_id, tool, f"{self.run_id}/cascade", fail=True)
            error = "ToolExecutionError"
        else:
            error = self.rng.choice(("ValidationError", "KeyError", "ValueError"))
        self.t += int(self.rng.uniform(20, 300) * _MS)
        if profile.name not in self._cascade_agents:
            self._cascade_agents.append(profile.name)
        return error

    # --- ground truth -----------------------------------------------------------------------

    def _record(self, type_: str, span: SpanRecord, note: str) -> None:
        self._record_span(type_, span.span_id, span.end_ns, note)

    def _record_span(self, type_: str, span_id: str, at_ns: int, note: str) -> None:
        if self._fault_done or self.plan.fault != type_:
            return
        self._fault_done = True
        self.truth.fault = Fault(type_, self.run_id, self.trace_id, span_id, at_ns, note)
