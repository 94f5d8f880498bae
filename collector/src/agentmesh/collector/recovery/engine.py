"""Automatic recovery: :class:`RecoveryEngine` turns detections into control-document entries.

- A detection whose policy action is ``stop`` or ``warn`` lists its run (with the last good
  handoff checkpoint to resume from); applications read it and stop or report the run.
- A detection whose action is ``break`` opens a circuit breaker on its model
  (``details["model"]``, provider from ``details["provider"]``); applications fall back.
- The engine's :attr:`~RecoveryEngine.observer` is fed every pipeline cycle (it is shaped like a
  streaming :class:`~agentmesh.collector.detectors.base.Detector`): it remembers checkpointed
  handoffs, and watches model calls to models with a breaker: a call that succeeds once the
  breaker is half-open closes it, one that fails re-opens it for twice the cool-down (capped).
- Once a second it lets time pass on the document: breakers past ``until`` turn half-open, runs
  older than the policy's TTL leave, half-open breakers nothing probed leave after the longest
  cool-down.

Every action is logged (info) and kept in :attr:`~RecoveryEngine.actions` (the most recent
1,000 by default). The engine is fail-open: its store keeps working when Redis does not.

Example:
    >>> import asyncio
    >>> from agentmesh.collector.detection import Detection
    >>> from agentmesh.collector.recovery.control_state import MemoryControlState
    >>> async def main() -> str:
    ...     async with RecoveryEngine(MemoryControlState()) as engine:
    ...         loop = Detection("det-1", "handoff_loop", "error", "t" * 32, "run-1", None, (),
    ...                          "a→b→c repeated", 0)
    ...         await engine.on_detection(loop)
    ...         return engine.control.current.runs["run-1"].action
    >>> asyncio.run(main())
    'stop'
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Final, Literal, Self

from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors._attempts import called_model, model_calls
from agentmesh.collector.detectors.node_feed import NodeFeed
from agentmesh.collector.detectors.outage import PROVIDER_RECOVERED
from agentmesh.collector.graph.node import GraphNode
from agentmesh.collector.recovery.breakers import closes, reopened, tripped
from agentmesh.collector.recovery.checkpoints import CheckpointIndex
from agentmesh.collector.recovery.control_state import (
    ControlState,
    Expired,
    expiry,
    needs_expiry,
)
from agentmesh.collector.recovery.document import Breaker, ControlDocument, RunControl
from agentmesh.collector.recovery.policy import RecoveryPolicy
from agentmesh.core import semconv
from agentmesh.core.log import get_logger
from agentmesh.core.tasks import cancel_and_wait

__all__ = ["ActionKind", "RecoveryAction", "RecoveryEngine", "RecoveryObserver"]

_log = get_logger(__name__)

ActionKind = Literal[
    "stop_run",
    "warn_run",
    "open_breaker",
    "reopen_breaker",
    "close_breaker",
    "half_open_breaker",
    "expire_breaker",
    "expire_run",
]
"""What the engine did."""

_MAX_REASON: Final = 500
_MAX_QUEUED_CALLS: Final = 10_000
_CHAT: Final = semconv.Operation.CHAT


@dataclass(frozen=True, slots=True)
class RecoveryAction:
    """One thing the engine did to the control document.

    Attributes:
        kind: What it did.
        at: When, Unix seconds.
        run_id: The run it listed or dropped, for run actions.
        model: The model, for breaker actions.
        detection_id: The detection behind it, when one is.
        detection_type: That detection's type.
        resume_checkpoint_id: For run actions, the checkpoint the run may resume from.
        until: For ``open_breaker`` / ``reopen_breaker``, when the cool-down ends.
    """

    kind: ActionKind
    at: float
    run_id: str | None = None
    model: str | None = None
    detection_id: str | None = None
    detection_type: str | None = None
    resume_checkpoint_id: str | None = None
    until: float | None = None

    def to_dict(self) -> dict[str, str | float | None]:
        """Return the action as JSON-ready data (for the API).

        Returns:
            Its fields by name.
        """
        return {
            "kind": self.kind,
            "at": self.at,
            "run_id": self.run_id,
            "model": self.model,
            "detection_id": self.detection_id,
            "detection_type": self.detection_type,
            "resume_checkpoint_id": self.resume_checkpoint_id,
            "until": self.until,
        }


@dataclass(frozen=True, slots=True)
class _Call:
    model: str
    ok: bool
    ended_at: float


class RecoveryObserver(NodeFeed):
    """The engine's eyes on the span stream, fed by the pipeline like a streaming detector.

    It reports no detections: it records checkpointed handoffs and queues the outcome of each
    call to a model that has a breaker (the engine applies them in the background).

    Args:
        engine: The engine it feeds.
    """

    def __init__(self, engine: RecoveryEngine) -> None:
        super().__init__("recovery", engine.observe_nodes)


class RecoveryEngine:
    """Applies the recovery policy to detections and to model calls; an async context manager.

    Entering opens the control state and starts the background work (expiry, breaker probes);
    leaving applies the calls still queued, stops it and closes the control state.

    Args:
        control: Where the control document lives (the engine opens and closes it).
        policy: What to do per detection type; the defaults when ``None``.
        checkpoints: Where checkpointed handoffs are remembered; a new index when ``None``.
        clock: Wall clock, Unix seconds.
        expire_interval_seconds: How often time is let pass on the document.
        max_actions: Actions kept in :attr:`actions`.
    """

    def __init__(
        self,
        control: ControlState,
        policy: RecoveryPolicy | None = None,
        *,
        checkpoints: CheckpointIndex | None = None,
        clock: Callable[[], float] = time.time,
        expire_interval_seconds: float = 1.0,
        max_actions: int = 1000,
    ) -> None:
        self._control = control
        self._policy = policy if policy is not None else RecoveryPolicy()
        self._checkpoints = checkpoints if checkpoints is not None else CheckpointIndex()
        self._clock = clock
        self._expire_interval = expire_interval_seconds
        self._actions: deque[RecoveryAction] = deque(maxlen=max_actions)
        self._calls: deque[_Call] = deque(maxlen=_MAX_QUEUED_CALLS)
        self._calls_arrived = asyncio.Event()
        self._processing = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._observer = RecoveryObserver(self)

    @property
    def control(self) -> ControlState:
        """The control document store."""
        return self._control

    @property
    def policy(self) -> RecoveryPolicy:
        """The policy applied."""
        return self._policy

    @property
    def observer(self) -> RecoveryObserver:
        """Give this to the pipeline among its ``detectors``."""
        return self._observer

    @property
    def actions(self) -> tuple[RecoveryAction, ...]:
        """The most recent actions, oldest first."""
        return tuple(self._actions)

    async def __aenter__(self) -> Self:
        await self._control.open()
        self._tasks = [
            asyncio.create_task(self._expire_forever(), name="agentmesh-recovery-expiry"),
            asyncio.create_task(self._probe_forever(), name="agentmesh-recovery-probes"),
        ]
        log_policy = {k: v for k, v in self._policy.actions.items() if v != "none"}
        _log.info("recovery engine started", actions=log_policy)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks)
        try:
            await self.drain()
        finally:
            await self._control.close()

    # --- detections -------------------------------------------------------------------------

    async def on_detection(self, detection: Detection) -> None:
        """Apply the policy to a new detection: the pipeline's ``on_detection`` listener.

        Args:
            detection: The detection.
        """
        await self.apply(detection)

    async def apply(self, detection: Detection) -> list[RecoveryAction]:
        """Apply the policy to a detection and say what was done.

        Args:
            detection: The detection.

        Returns:
            The actions taken (empty when the policy says ``none`` or the document already
            said as much).
        """
        if detection.type == PROVIDER_RECOVERED:  # the outage detector saw the model answer again
            return await self._recovered(detection)
        action = self._policy.action_for(detection.type)
        if action == "stop" or action == "warn":
            return await self._list_run(detection, action)
        if action == "break":
            return await self._trip(detection)
        _log.debug("no recovery action", type=detection.type, detection_id=detection.id)
        return []

    async def _list_run(
        self, detection: Detection, action: Literal["stop", "warn"]
    ) -> list[RecoveryAction]:
        now = self._clock()
        resume = self._checkpoints.last_good(detection.trace_id, detection.span_ids)
        control = RunControl(
            action, detection.id, detection.type, detection.explanation, resume, now
        )
        if not await self._control.set_run(detection.run_id, control):
            _log.debug("run already listed", run_id=detection.run_id, detection_id=detection.id)
            return []
        return [
            self._record(
                RecoveryAction(
                    "stop_run" if action == "stop" else "warn_run",
                    now,
                    run_id=detection.run_id,
                    detection_id=detection.id,
                    detection_type=detection.type,
                    resume_checkpoint_id=resume,
                )
            )
        ]

    async def _recovered(self, detection: Detection) -> list[RecoveryAction]:
        model = _text(detection.details.get("model"))
        if model is None or not await self._control.close_breaker(model):
            return []
        return [
            self._record(
                RecoveryAction(
                    "close_breaker",
                    self._clock(),
                    model=model,
                    detection_id=detection.id,
                    detection_type=detection.type,
                )
            )
        ]

    async def _trip(self, detection: Detection) -> list[RecoveryAction]:
        model = _text(detection.details.get("model"))
        if model is None:
            _log.warning(
                "cannot open a breaker: the detection names no model",
                type=detection.type,
                detection_id=detection.id,
            )
            return []
        provider = _text(detection.details.get("provider"))
        now = self._clock()
        reason = f"{detection.type}: {detection.explanation}"[:_MAX_REASON]
        decided: list[tuple[Breaker | None, Breaker]] = []

        def change(document: ControlDocument) -> ControlDocument | None:
            existing = document.breakers.get(model)
            breaker = tripped(
                existing,
                now=now,
                cooldown=self._policy.breaker_cooldown_seconds,
                cap=self._policy.breaker_max_cooldown_seconds,
                reason=reason,
                detection_id=detection.id,
                provider=provider,
            )
            decided[:] = [] if breaker is None else [(existing, breaker)]
            if breaker is None:
                return None
            return replace(document, breakers={**document.breakers, model: breaker})

        if not await self._control.update(change) or not decided:
            _log.debug("breaker already open", model=model, detection_id=detection.id)
            return []
        existing, breaker = decided[0]
        return [
            self._record(
                RecoveryAction(
                    "open_breaker" if existing is None else "reopen_breaker",
                    now,
                    model=model,
                    detection_id=detection.id,
                    detection_type=detection.type,
                    until=breaker.until,
                )
            )
        ]

    # --- spans ------------------------------------------------------------------------------

    def observe_nodes(self, spans: Sequence[GraphNode]) -> None:
        """Take spans: remember checkpoints, queue calls to models that have a breaker.

        Args:
            spans: The spans of a pipeline cycle, in arrival order.
        """
        self._checkpoints.observe(spans)
        breakers = self._control.current.breakers
        if not breakers:
            return
        queued = False
        for span in spans:
            if span.operation != _CHAT:
                continue
            for node in model_calls(span) if span.failed_attempts else (span,):
                model = called_model(node)
                if model is None or model not in breakers:
                    continue
                ok = _outcome(node)
                if ok is not None:
                    self._calls.append(_Call(model, ok, node.end_ns / 1e9))
                    queued = True
        if queued:
            self._calls_arrived.set()

    async def drain(self) -> None:
        """Apply every queued call outcome now (tests; leaving the engine does it too)."""
        async with self._processing:
            while self._calls:
                call = self._calls.popleft()
                try:
                    await self._on_call(call)
                except Exception:  # noqa: BLE001 - logged; the next call is applied anyway
                    _log.exception("breaker probe not applied", model=call.model)

    async def _probe_forever(self) -> None:
        while True:
            await self._calls_arrived.wait()
            self._calls_arrived.clear()
            await self.drain()

    async def _on_call(self, call: _Call) -> None:
        existing = self._control.current.breakers.get(call.model)
        if existing is None:
            return
        now = self._clock()
        if call.ok:
            if not closes(existing, ended_at=call.ended_at):
                return

            def close(document: ControlDocument) -> ControlDocument | None:
                if not closes(document.breakers.get(call.model), ended_at=call.ended_at):
                    return None
                breakers = {k: v for k, v in document.breakers.items() if k != call.model}
                return replace(document, breakers=breakers)

            if await self._control.update(close):
                self._record(
                    RecoveryAction(
                        "close_breaker", now, model=call.model, detection_id=existing.detection_id
                    )
                )
            return
        cap = self._policy.breaker_max_cooldown_seconds
        reason = f"a call to {call.model} failed while the breaker was half-open"
        if reopened(existing, ended_at=call.ended_at, now=now, cap=cap, reason=reason) is None:
            return
        decided: list[Breaker] = []

        def reopen(document: ControlDocument) -> ControlDocument | None:
            breaker = reopened(
                document.breakers.get(call.model),
                ended_at=call.ended_at,
                now=now,
                cap=cap,
                reason=reason,
            )
            decided[:] = [] if breaker is None else [breaker]
            if breaker is None:
                return None
            return replace(document, breakers={**document.breakers, call.model: breaker})

        if await self._control.update(reopen) and decided:
            self._record(
                RecoveryAction(
                    "reopen_breaker",
                    now,
                    model=call.model,
                    detection_id=decided[0].detection_id,
                    until=decided[0].until,
                )
            )

    # --- time -------------------------------------------------------------------------------

    async def expire(self) -> list[RecoveryAction]:
        """Let time pass on the document now (the engine does it every second by itself).

        Returns:
            The actions taken (breakers half-opened, runs and breakers dropped).
        """
        now = self._clock()
        run_ttl = self._policy.run_ttl_seconds
        half_open_ttl = self._policy.breaker_max_cooldown_seconds
        if not needs_expiry(
            self._control.current,
            now,
            run_ttl_seconds=run_ttl,
            half_open_ttl_seconds=half_open_ttl,
        ):
            return []
        effects: list[Expired] = []
        change = expiry(
            now, run_ttl_seconds=run_ttl, half_open_ttl_seconds=half_open_ttl, effects=effects
        )
        if not await self._control.update(change):
            return []
        done: list[RecoveryAction] = []
        for kind, name in effects:
            if kind == "expire_run":
                done.append(self._record(RecoveryAction(kind, now, run_id=name)))
            else:
                done.append(self._record(RecoveryAction(kind, now, model=name)))
        return done

    async def _expire_forever(self) -> None:
        while True:
            await asyncio.sleep(self._expire_interval)
            try:
                await self.expire()
            except Exception:  # noqa: BLE001 - logged; tried again next period
                _log.exception("control document expiry failed")

    def _record(self, action: RecoveryAction) -> RecoveryAction:
        self._actions.append(action)
        _log.info(
            "recovery action",
            kind=action.kind,
            run_id=action.run_id,
            model=action.model,
            detection_id=action.detection_id,
            detection_type=action.detection_type,
            resume_checkpoint_id=action.resume_checkpoint_id,
            until=action.until,
        )
        return action


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _outcome(node: GraphNode) -> bool | None:
    """Whether a model call says the model works (``None``: the request's own fault)."""
    if not node.error:
        return True
    status = node.http_status
    if status is None or status in (408, 429) or status >= 500:
        return False
    return None  # 400, 401, 404…: a bad request, not a failing model
