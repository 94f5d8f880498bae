"""CrewAI flow persistence on an AgentMesh checkpoint store: :class:`AgentMeshFlowPersistence`.

Use it wherever CrewAI takes a ``FlowPersistence``::

    from crewai.flow.flow import Flow, start
    from crewai.flow.persistence import persist

    @persist(AgentMeshFlowPersistence.from_url("redis://localhost:6379/0"))
    class ReportFlow(Flow[ReportState]):
        @start()
        def gather(self) -> None: ...

    ReportFlow().kickoff(inputs={"id": flow_id})  # reloads the flow's newest state

Layout in the store: thread = the flow's uuid (``state.id``); namespace ``crewai.flow`` holds
one checkpoint per save (metadata ``{"source": "crewai.flow", "method": <method name>}``, and
the AgentMesh run id as the record's ``run_id`` when one is in baggage); namespace
``crewai.flow.pending`` holds the pending human-feedback marker (cleared by a newer marker).

What it fixes compared with CrewAI's SQLite persistence:

- the state is serialised with :class:`~agentmesh.checkpoint.serde.SafeSerializer`, so datetimes,
  UUIDs, nested pydantic models, bytes… come back as themselves (no JSON round trip);
- the state is stored as a plain dict (pydantic models dumped field by field), so a state model
  that gained fields since a save loads the old save, the new fields taking their defaults;
- a failed write raises :class:`~agentmesh.core.CheckpointError` (``on_error="log"`` to only log
  it). Inside a flow, CrewAI 1.15 wraps it: ``RuntimeError("State persistence failed: …")``
  whose ``__cause__`` is the ``CheckpointError``; the flow stops either way.

CrewAI calls persistence synchronously; the store's async calls run on a private event loop
thread owned by this object (a synchronous twin store is called directly). Call :meth:`close`
(or use it as a context manager) when done.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

from crewai.flow.persistence.base import FlowPersistence
from pydantic import BaseModel, Field, PrivateAttr, field_validator
from pydantic_core import PydanticSerializationError

from agentmesh.checkpoint.crewai._bridge import StoreBridge
from agentmesh.checkpoint.crewai._ids import new_checkpoint_id
from agentmesh.checkpoint.crewai._policy import OnError, check_on_error, write_failed
from agentmesh.checkpoint.crewai._run_id import baggage_run_id
from agentmesh.checkpoint.crewai._serde import as_document, dump_blob, load_blob
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, StoredCheckpoint
from agentmesh.core.errors import CheckpointError, CheckpointSerdeError, ConfigError
from agentmesh.core.log import get_logger

if TYPE_CHECKING:
    from crewai.flow.async_feedback.types import PendingFeedbackContext

__all__ = ["FLOW_NAMESPACE", "PENDING_NAMESPACE", "AgentMeshFlowPersistence"]

_log = get_logger(__name__)

FLOW_NAMESPACE = "crewai.flow"
"""Namespace of flow state checkpoints (thread = the flow's uuid)."""

PENDING_NAMESPACE = "crewai.flow.pending"
"""Namespace of the pending human-feedback markers (thread = the flow's uuid)."""

_FORMAT = 1
_SOURCE = "crewai.flow"


def _state_dict(state_data: object, *, json_mode: bool) -> dict[str, Any]:
    if isinstance(state_data, BaseModel):
        mode = "json" if json_mode else "python"
        try:
            return state_data.model_dump(mode=mode)
        except PydanticSerializationError as exc:
            field = _unserialisable_field(state_data, mode)
            where = f"field {field!r} of " if field is not None else ""
            raise CheckpointSerdeError(
                f"{where}flow state {type(state_data).__name__} cannot be stored: {exc}"
            ) from exc
    document = as_document(state_data)
    if document is not None:
        return document
    raise CheckpointSerdeError(
        f"flow state must be a pydantic model or a dict, not {type(state_data).__name__}"
    )


def _unserialisable_field(state: BaseModel, mode: str) -> str | None:
    """The first field of ``state`` pydantic cannot dump (the one to fix)."""
    for name in type(state).model_fields:
        try:
            state.model_dump(mode=mode, include={name})
        except PydanticSerializationError:
            return name
    return None


def _state_blob(flow_uuid: str, document: dict[str, Any], state_data: object) -> Blob:
    """Serialise a document holding the state; a model's state falls back to its JSON dump."""
    what = f"flow state of {flow_uuid!r}"
    try:
        return dump_blob({**document, "state": _state_dict(state_data, json_mode=False)}, what)
    except CheckpointSerdeError:
        if not isinstance(state_data, BaseModel):
            raise
    # Lossless for the model: pydantic validates the JSON forms back on load.
    return dump_blob({**document, "state": _state_dict(state_data, json_mode=True)}, what)


def _document(stored: StoredCheckpoint, what: str) -> dict[str, Any]:
    document = as_document(load_blob(stored.record.checkpoint, what))
    if document is None or document.get("format") != _FORMAT:
        raise CheckpointSerdeError(f"the stored {what} is not a CrewAI flow checkpoint")
    return document


def _state_of(document: Mapping[str, Any], what: str) -> dict[str, Any]:
    state = as_document(document.get("state"))
    if state is None:
        raise CheckpointSerdeError(f"the stored {what} holds no state")
    return state


class AgentMeshFlowPersistence(FlowPersistence):
    """CrewAI ``FlowPersistence`` on any AgentMesh checkpoint store.

    Args:
        store: The store (not open yet: this object opens it on its own event loop thread,
            and closes it in :meth:`close`), or a synchronous twin store. Omit it to give
            ``url`` instead.
        url: A store URL (``memory://``, ``duckdb:///path``, ``redis://…``, ``postgresql://…``),
            opened on first use; kept when CrewAI serialises the flow, so a flow restored from
            CrewAI's own checkpoints reconnects.
        on_error: ``"raise"`` (default): a failed write raises
            :class:`~agentmesh.core.CheckpointError`; ``"log"``: it is logged and the flow goes
            on (reads always raise).

    Example:
        >>> persistence = AgentMeshFlowPersistence.from_url("memory://")
        >>> persistence.load_state("no-such-flow") is None
        True
        >>> persistence.close()
    """

    persistence_type: str = Field(default="AgentMeshFlowPersistence")
    url: str | None = Field(default=None, description="Store URL, opened on first use.")
    on_error: OnError = Field(default="raise", description="'raise' or 'log' failed writes.")

    _bridge: StoreBridge | None = PrivateAttr(default=None)
    _bridge_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _parents: dict[str, str] = PrivateAttr(default_factory=lambda: {})

    def __init__(self, store: object | None = None, /, **data: Any) -> None:
        """Create the persistence (nothing is opened until first use).

        Args:
            store: The store, or ``None`` with ``url=…``.
            **data: ``url``, ``on_error``.

        Raises:
            ConfigError: Neither or both of a store and a URL.
        """
        super().__init__(**data)
        if store is not None:
            if self.url is not None:
                raise ConfigError("AgentMeshFlowPersistence takes a store or a url, not both")
            self._bridge = StoreBridge(store, thread_name="agentmesh-crewai-flow")
        elif self.url is None:
            raise ConfigError("AgentMeshFlowPersistence needs a checkpoint store or a url")

    @field_validator("on_error", mode="before")
    @classmethod
    def _check_on_error(cls, value: object) -> object:
        return check_on_error(value) if isinstance(value, str) else value

    @classmethod
    def from_url(cls, url: str, *, on_error: OnError = "raise") -> Self:
        """Create a persistence on the store a URL names (opened on first use).

        Args:
            url: ``memory://``, ``duckdb:///abs/path.duckdb``, ``redis://host:port/db``,
                ``postgresql://…``.
            on_error: ``"raise"`` or ``"log"`` failed writes.

        Returns:
            The persistence.
        """
        return cls(url=url, on_error=on_error)

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        """Return the object itself: it is a handle on shared storage, never duplicated."""
        return self

    def __enter__(self) -> Self:
        """Use as a context manager; :meth:`close` on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store and the loop thread."""
        self.close()

    def close(self) -> None:
        """Close the store (if opened) and end the event loop thread; idempotent."""
        with self._bridge_lock:
            bridge = self._bridge
        if bridge is not None:
            bridge.close()

    def _get_bridge(self) -> StoreBridge:
        with self._bridge_lock:
            if self._bridge is None:
                if self.url is None:
                    raise ConfigError("AgentMeshFlowPersistence needs a checkpoint store or a url")
                from agentmesh.checkpoint.store.factory import open_store

                self._bridge = StoreBridge(
                    open_store(self.url), thread_name="agentmesh-crewai-flow"
                )
            return self._bridge

    def init_db(self) -> None:
        """Open the store now (connect, migrate) instead of on first use.

        Raises:
            CheckpointError: The store cannot be opened.
        """
        self._get_bridge().open()

    def _put(
        self,
        flow_uuid: str,
        namespace: str,
        document: dict[str, Any],
        metadata: dict[str, Any],
        state_data: object | None,
    ) -> None:
        bridge = self._get_bridge()
        what = f"flow state of {flow_uuid!r}"
        blob = (
            dump_blob(document, what)
            if state_data is None
            else _state_blob(flow_uuid, document, state_data)
        )
        checkpoint_id = new_checkpoint_id()
        key = f"{namespace}\x00{flow_uuid}"
        with self._bridge_lock:
            parent = self._parents.get(key)
        record = CheckpointRecord(
            thread_id=flow_uuid,
            namespace=namespace,
            checkpoint_id=checkpoint_id,
            parent_id=parent,
            checkpoint=blob,
            metadata=metadata,
            channel_versions={},
            run_id=baggage_run_id(),
        )
        bridge.put(record, {})
        with self._bridge_lock:
            self._parents[key] = checkpoint_id

    def save_state(
        self, flow_uuid: str, method_name: str, state_data: dict[str, Any] | BaseModel
    ) -> None:
        """Store the flow's state after a method completed: one checkpoint.

        Args:
            flow_uuid: The flow's uuid (the thread).
            method_name: The method that completed (in the checkpoint's metadata).
            state_data: The state (a pydantic model or a dict).

        Raises:
            CheckpointError: The write failed and ``on_error`` is ``"raise"``.
        """
        document = {"format": _FORMAT, "kind": "state", "method": method_name}
        metadata = {"source": _SOURCE, "method": method_name}
        try:
            self._put(flow_uuid, FLOW_NAMESPACE, document, metadata, state_data)
        except CheckpointError as exc:
            write_failed(self.on_error, exc, flow_uuid=flow_uuid, method=method_name)

    def load_state(self, flow_uuid: str) -> dict[str, Any] | None:
        """The flow's newest saved state.

        Args:
            flow_uuid: The flow's uuid.

        Returns:
            The state as a dict (values as they were: datetimes, UUIDs…; nested models as
            dicts, which CrewAI validates back into the state model), or ``None``.

        Raises:
            CheckpointError: The store failed or the stored state cannot be read.
        """
        stored = self._get_bridge().get(flow_uuid, FLOW_NAMESPACE)
        if stored is None:
            return None
        what = f"flow state of {flow_uuid!r}"
        return _state_of(_document(stored, what), what)

    def delete(self, flow_uuid: str) -> None:
        """Delete everything stored for a flow (its states and pending-feedback markers).

        Args:
            flow_uuid: The flow's uuid.

        Raises:
            CheckpointError: The store failed.
        """
        self._get_bridge().delete_thread(flow_uuid)
        with self._bridge_lock:
            for namespace in (FLOW_NAMESPACE, PENDING_NAMESPACE):
                self._parents.pop(f"{namespace}\x00{flow_uuid}", None)

    def save_pending_feedback(
        self,
        flow_uuid: str,
        context: PendingFeedbackContext,
        state_data: dict[str, Any] | BaseModel,
    ) -> None:
        """Store the state and a pending human-feedback marker (the flow is paused).

        Args:
            flow_uuid: The flow's uuid.
            context: What is needed to resume the flow.
            state_data: The state.

        Raises:
            CheckpointError: A write failed and ``on_error`` is ``"raise"``.
        """
        method = context.method_name
        try:
            self._put(
                flow_uuid,
                FLOW_NAMESPACE,
                {"format": _FORMAT, "kind": "state", "method": method},
                {"source": _SOURCE, "method": method, "pending_feedback": True},
                state_data,
            )
            self._put(
                flow_uuid,
                PENDING_NAMESPACE,
                {
                    "format": _FORMAT,
                    "kind": "pending",
                    "pending": True,
                    "method": method,
                    "context": context.to_dict(),
                },
                {"source": _SOURCE, "method": method, "pending": True},
                state_data,
            )
        except CheckpointError as exc:
            write_failed(self.on_error, exc, flow_uuid=flow_uuid, method=method)

    def load_pending_feedback(
        self, flow_uuid: str
    ) -> tuple[dict[str, Any], PendingFeedbackContext] | None:
        """The state and pending-feedback context of a paused flow.

        Args:
            flow_uuid: The flow's uuid.

        Returns:
            ``(state, context)``, or ``None`` when the flow is not waiting for feedback.

        Raises:
            CheckpointError: The store failed or the marker cannot be read.
        """
        from crewai.flow.async_feedback.types import PendingFeedbackContext

        stored = self._get_bridge().get(flow_uuid, PENDING_NAMESPACE)
        if stored is None:
            return None
        what = f"pending feedback of flow {flow_uuid!r}"
        document = _document(stored, what)
        if document.get("pending") is not True:
            return None
        context = as_document(document.get("context"))
        if context is None:
            raise CheckpointSerdeError(f"the stored {what} holds no context")
        return _state_of(document, what), PendingFeedbackContext.from_dict(context)

    def clear_pending_feedback(self, flow_uuid: str) -> None:
        """Clear the pending-feedback marker (the flow resumed): a newer, empty marker.

        Args:
            flow_uuid: The flow's uuid.

        Raises:
            CheckpointError: The write failed and ``on_error`` is ``"raise"``.
        """
        try:
            self._put(
                flow_uuid,
                PENDING_NAMESPACE,
                {"format": _FORMAT, "kind": "pending", "pending": False},
                {"source": _SOURCE, "pending": False},
                None,
            )
        except CheckpointError as exc:
            write_failed(self.on_error, exc, flow_uuid=flow_uuid, method=None)
        _log.debug("crewai_pending_feedback_cleared", flow_uuid=flow_uuid)
