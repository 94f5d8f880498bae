"""The AgentMesh exception tree.

Every error AgentMesh raises on purpose derives from :class:`AgentMeshError`, so callers can
catch the whole family with one ``except`` clause. Foreign exceptions (pydantic, grpc, duckdb…)
are translated at the boundary with ``raise OurError(...) from exc``::

    AgentMeshError
    ├── ConfigError            a setting is missing or has a wrong value
    ├── ContractError          a span or attribute breaks the span contract
    ├── InstrumentationError   an instrumentor could not be applied (never raised into apps)
    ├── ProviderError          a (fake) provider script or request is invalid
    ├── CollectorError
    │   ├── ReceiverError      the OTLP receiver could not start or decode a request
    │   └── StoreError         a storage backend failed
    │       └── StoreUnavailableError   it cannot be reached now (trying later may work)
    ├── DetectionError         a detector was misconfigured or failed
    ├── RouteTableError        a route table is malformed or cannot be written
    ├── CheckpointError        a checkpoint store or saver failed
    │   ├── CheckpointConflictError   another writer moved the thread on (no fork is written)
    │   └── CheckpointSerdeError      a value cannot be stored, or a payload is refused on load
    ├── ResumeError            a run cannot be resumed as its plan says
    └── RunStoppedError        the collector stopped this run (a loop, ping-pong, runaway…);
                               also a RuntimeError, so retry policies leave it alone
"""

from __future__ import annotations

__all__ = [
    "AgentMeshError",
    "CheckpointConflictError",
    "CheckpointError",
    "CheckpointSerdeError",
    "CollectorError",
    "ConfigError",
    "ContractError",
    "DetectionError",
    "InstrumentationError",
    "ProviderError",
    "ReceiverError",
    "ResumeError",
    "RouteTableError",
    "RunStoppedError",
    "StoreError",
    "StoreUnavailableError",
]


class AgentMeshError(Exception):
    """Root of every exception AgentMesh raises on purpose."""


class ConfigError(AgentMeshError):
    """A setting is missing or has a wrong value.

    The message names the environment variable (or option) and what it wants.
    """


class ContractError(AgentMeshError):
    """A span, attribute or baggage entry breaks the span contract."""


class InstrumentationError(AgentMeshError):
    """An instrumentor could not be applied.

    The instrumentation logs these and carries on: they never reach the application.
    """


class ProviderError(AgentMeshError):
    """A provider script or request is invalid (for example in the fake provider)."""


class CollectorError(AgentMeshError):
    """A failure inside the collector service."""


class ReceiverError(CollectorError):
    """The OTLP receiver could not start, or could not decode a request."""


class StoreError(CollectorError):
    """A storage backend failed to read or write."""


class StoreUnavailableError(StoreError):
    """A storage backend cannot be reached now: refused, lost or timed-out connections.

    Nothing of the call was applied, and the same call may succeed later: the collector's
    pipeline holds the data and tries again instead of dropping it.
    """


class DetectionError(AgentMeshError):
    """A detector was misconfigured or failed while scoring."""


class RouteTableError(AgentMeshError):
    """A route table is malformed, too large, or cannot be written as JSON.

    The message names the field in plain words (``the trade-off of task class 'triage':
    cost_weight must be a number of 0 or more``).
    """


class CheckpointError(AgentMeshError):
    """A checkpoint store or saver could not read or write.

    The message names the backend, the thread and what went wrong.
    """


class CheckpointConflictError(CheckpointError):
    """Another writer extended the thread's chain first; this write was refused, not forked.

    Attributes:
        thread_id: The thread both writers wrote to.
        namespace: The checkpoint namespace (``""`` for the root graph).
        expected: The checkpoint this writer meant to extend.
        actual: The newest checkpoint the store holds for the namespace.

    Args:
        thread_id: The thread.
        namespace: The namespace.
        expected: The checkpoint this writer meant to extend.
        actual: The newest checkpoint the store holds.
        message: Said instead of the default explanation (a refusal of another kind).
    """

    def __init__(
        self,
        thread_id: str,
        namespace: str,
        expected: str | None,
        actual: str | None,
        *,
        message: str | None = None,
    ) -> None:
        super().__init__(
            message
            or f"thread {thread_id!r} (namespace {namespace!r}) moved on: this writer extends "
            f"checkpoint {expected!r} but the newest is {actual!r}; another writer is running "
            "the same thread, so this write was refused instead of forking the chain"
        )
        self.thread_id = thread_id
        self.namespace = namespace
        self.expected = expected
        self.actual = actual


class CheckpointUnavailableError(CheckpointError):
    """A checkpoint store cannot write now (a full disk, say); the writes are held, not lost.

    The store keeps the refused writes in memory, in order, and writes them as soon as the
    disk takes them again (each later call tries); until then calls that need the file raise
    this. A store closed while writes are still held raises a plain
    :class:`CheckpointError` naming how many were lost.
    """


class CheckpointSerdeError(CheckpointError):
    """A value cannot be serialised, or a stored payload is refused on load (a pickle, say)."""


class ResumeError(AgentMeshError):
    """A run cannot be resumed as its plan says.

    Raised into the application by the resumed run's first call (``agentmesh resume`` or
    :func:`agentmesh.instrumentation.resume` asked for it): the plan's checkpoint is not in the
    graph's checkpointer, or the graph has none. Starting over instead would run completed
    steps again, which resuming promises not to do.
    """


class RunStoppedError(AgentMeshError, RuntimeError):
    """The collector detected a failure in this run and its policy is to stop it.

    Raised into the application at the run's next step (agent step or model call), so the run
    ends cleanly instead of burning budget. The message names the detection.

    It is also a :class:`RuntimeError`: retry policies that leave programming errors alone
    must not retry a stop either. LangGraph's default ``retry_on`` (a node's
    ``RetryPolicy()``) retries any exception but ``ValueError``, ``TypeError``,
    ``RuntimeError`` and a few others; a stop that was a plain ``Exception`` ran the stopped
    node again, with backoff, until its attempts were spent.

    Args:
        run_id: The stopped run.
        detection_type: What was detected (``handoff_loop``, ``runaway``…).
        explanation: The detection's explanation, for people.
        detection_id: The detection's id (look it up with ``agentmesh detections``).
        resume_checkpoint_id: The last good handoff checkpoint to resume from, when known.

    Attributes:
        run_id: The stopped run.
        detection_type: What was detected.
        explanation: The detection's explanation.
        detection_id: The detection's id.
        resume_checkpoint_id: The checkpoint to resume from, or ``None``.
    """

    def __init__(
        self,
        run_id: str,
        detection_type: str,
        explanation: str,
        detection_id: str,
        resume_checkpoint_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.detection_type = detection_type
        self.explanation = explanation
        self.detection_id = detection_id
        self.resume_checkpoint_id = resume_checkpoint_id
        resume = f"; resume from checkpoint {resume_checkpoint_id}" if resume_checkpoint_id else ""
        super().__init__(
            f"AgentMesh stopped run {run_id}: {detection_type} ({explanation}) "
            f"[detection {detection_id}]{resume}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            type(self),
            (
                self.run_id,
                self.detection_type,
                self.explanation,
                self.detection_id,
                self.resume_checkpoint_id,
            ),
        )
