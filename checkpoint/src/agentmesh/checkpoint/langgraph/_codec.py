"""LangGraph checkpoints to store records and back.

A :class:`~langgraph.checkpoint.base.Checkpoint` becomes a
:class:`~agentmesh.checkpoint.store.base.CheckpointRecord`: the checkpoint document without its
channel values, serialised by the saver's serde; the values of the channels that changed
(``new_versions``) as blobs keyed ``(channel, version)``; JSON-able metadata (LangGraph's
``get_serializable_checkpoint_metadata``); the run id from the metadata. Pending writes keep
LangGraph's indexes (``WRITES_IDX_MAP`` for the special channels). Payloads above a threshold
are zstd-compressed (:mod:`._compress`).

Loading refuses pickles: a stored ``pickle`` payload raises
:class:`~agentmesh.core.CheckpointSerdeError` whatever the serde would do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from agentmesh.checkpoint.langgraph._compress import pack, unpack
from agentmesh.checkpoint.langgraph._versions import version_key
from agentmesh.checkpoint.store.base import (
    Blob,
    CheckpointRecord,
    ListQuery,
    StoredCheckpoint,
    WriteRecord,
)
from agentmesh.core.errors import CheckpointError, CheckpointSerdeError

__all__ = [
    "Address",
    "PutPlan",
    "address",
    "decode",
    "encode_put",
    "encode_writes",
    "jsonable",
    "list_query",
    "tuple_config",
]

_REFUSED_TYPES = frozenset({"pickle"})
"""Serialisation types never loaded (arbitrary code on load)."""

_EMPTY = "empty"
"""The type tag other savers write for a channel without a value."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where a config points: thread, namespace and checkpoint id (None: the newest)."""

    thread_id: str
    namespace: str
    checkpoint_id: str | None


@dataclass(frozen=True, slots=True)
class PutPlan:
    """What one ``put`` sends to the store, and the config it returns."""

    record: CheckpointRecord
    blobs: dict[tuple[str, str], Blob]
    config: RunnableConfig


def address(config: RunnableConfig, what: str) -> Address:
    """The thread, namespace and checkpoint id a config names.

    Raises:
        CheckpointError: The config has no ``configurable.thread_id``.
    """
    configurable: Mapping[str, Any] = config.get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if thread_id is None:
        raise CheckpointError(
            f"{what}: the config has no configurable.thread_id; pass "
            '{"configurable": {"thread_id": ...}} when invoking a graph with a checkpointer'
        )
    checkpoint_id = configurable.get("checkpoint_id")
    return Address(
        str(thread_id),
        str(configurable.get("checkpoint_ns") or ""),
        str(checkpoint_id) if checkpoint_id else None,
    )


def tuple_config(thread_id: str, namespace: str, checkpoint_id: str) -> RunnableConfig:
    """The config of a stored checkpoint."""
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": namespace,
            "checkpoint_id": checkpoint_id,
        }
    }


def jsonable(value: Any) -> Any:
    """A JSON-able copy: mappings and sequences copied, tuples as lists, other objects as text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        mapping = cast(Mapping[Any, Any], value)
        return {str(key): jsonable(item) for key, item in mapping.items()}
    if isinstance(value, list | tuple):
        items = cast(Iterable[Any], value)
        return [jsonable(item) for item in items]
    return str(value)


def _dump(serde: SerializerProtocol, value: Any, threshold: int | None, what: str) -> Blob:
    try:
        type_, data = serde.dumps_typed(value)
    except Exception as exc:
        raise CheckpointSerdeError(
            f"{what}: cannot serialise a {type(value).__name__}: {exc}"
        ) from exc
    return pack(type_, data, threshold=threshold)


def _load(serde: SerializerProtocol, blob: Blob, what: str) -> Any:
    type_, data = unpack(blob)
    if type_ in _REFUSED_TYPES:
        raise CheckpointSerdeError(
            f"{what}: refusing to load a stored {type_!r} payload (loading it could run "
            "arbitrary code); AgentMesh savers never write one"
        )
    try:
        return serde.loads_typed((type_, data))
    except Exception as exc:
        raise CheckpointSerdeError(
            f"{what}: cannot load a stored {type_!r} payload: {exc}"
        ) from exc


def encode_put(
    serde: SerializerProtocol,
    threshold: int | None,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> PutPlan:
    """The record and new blobs of a ``put``, and the config ``put`` returns.

    Raises:
        CheckpointError: The config has no thread id.
        CheckpointSerdeError: A value cannot be serialised.
    """
    where = address(config, "put")
    checkpoint_id = checkpoint["id"]
    what = f"put of checkpoint {checkpoint_id!r} (thread {where.thread_id!r})"
    values: Mapping[str, Any] = checkpoint["channel_values"]
    document = {key: value for key, value in checkpoint.items() if key != "channel_values"}
    blobs: dict[tuple[str, str], Blob] = {}
    for channel, version in new_versions.items():
        if channel in values:
            blobs[(channel, version_key(version))] = _dump(
                serde, values[channel], threshold, f"{what}, channel {channel!r}"
            )
    stored_metadata = cast(
        dict[str, Any], jsonable(get_serializable_checkpoint_metadata(config, metadata))
    )
    run_id = stored_metadata.get("run_id")
    record = CheckpointRecord(
        thread_id=where.thread_id,
        namespace=where.namespace,
        checkpoint_id=checkpoint_id,
        parent_id=where.checkpoint_id,
        checkpoint=_dump(serde, document, threshold, what),
        metadata=stored_metadata,
        channel_versions={
            channel: version_key(version)
            for channel, version in checkpoint["channel_versions"].items()
        },
        run_id=str(run_id) if run_id is not None else None,
    )
    return PutPlan(record, blobs, tuple_config(where.thread_id, where.namespace, checkpoint_id))


def encode_writes(
    serde: SerializerProtocol,
    threshold: int | None,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> list[WriteRecord]:
    """Write records of a task, special channels at their fixed negative indexes.

    Raises:
        CheckpointSerdeError: A value cannot be serialised.
    """
    return [
        WriteRecord(
            task_id=task_id,
            task_path=task_path,
            idx=WRITES_IDX_MAP.get(channel, idx),
            channel=channel,
            value=_dump(serde, value, threshold, f"write of task {task_id!r} to {channel!r}"),
        )
        for idx, (channel, value) in enumerate(writes)
    ]


def decode(serde: SerializerProtocol, stored: StoredCheckpoint) -> CheckpointTuple:
    """The checkpoint tuple of a stored checkpoint, pending writes in ``writes_sort_key`` order.

    Raises:
        CheckpointSerdeError: A payload cannot be loaded (or is a pickle).
    """
    record = stored.record
    what = f"checkpoint {record.checkpoint_id!r} (thread {record.thread_id!r})"
    document: dict[str, Any] = dict(_load(serde, record.checkpoint, what))
    document["channel_values"] = {
        channel: _load(serde, blob, f"{what}, channel {channel!r}")
        for channel, blob in stored.values.items()
        if blob.type != _EMPTY
    }
    writes = sorted(stored.writes, key=lambda write: (write.task_path, write.task_id, write.idx))
    pending: list[PendingWrite] = [
        (write.task_id, write.channel, _load(serde, write.value, f"{what}, pending write"))
        for write in writes
    ]
    return CheckpointTuple(
        config=tuple_config(record.thread_id, record.namespace, record.checkpoint_id),
        checkpoint=cast(Checkpoint, document),
        metadata=cast(CheckpointMetadata, jsonable(record.metadata)),
        parent_config=(
            tuple_config(record.thread_id, record.namespace, record.parent_id)
            if record.parent_id
            else None
        ),
        pending_writes=pending,
    )


def list_query(
    config: RunnableConfig | None,
    filter: Mapping[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> ListQuery:
    """The store query of a ``list`` call (LangGraph's semantics: a missing namespace = all)."""
    configurable: Mapping[str, Any] = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    namespace = configurable.get("checkpoint_ns")
    before_id = get_checkpoint_id(before) if before and before.get("configurable") else None
    checkpoint_id = configurable.get("checkpoint_id")
    return ListQuery(
        thread_id=str(thread_id) if thread_id is not None else None,
        namespace=str(namespace) if namespace is not None else None,
        checkpoint_id=str(checkpoint_id) if checkpoint_id else None,
        before=str(before_id) if before_id else None,
        metadata=cast(dict[str, Any], jsonable(filter)) if filter else None,
        limit=limit,
    )
