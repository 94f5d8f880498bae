"""LangGraph checkpoints to store records and back.

A :class:`~langgraph.checkpoint.base.Checkpoint` becomes a
:class:`~agentmesh.checkpoint.store.base.CheckpointRecord`: the checkpoint document without its
channel values, serialised by the saver's serde; the values of the channels that changed
(``new_versions``) as blobs keyed ``(channel, version)``; JSON-able metadata (LangGraph's
``get_serializable_checkpoint_metadata``); the run id from the metadata. Pending writes keep
LangGraph's indexes (``WRITES_IDX_MAP`` for the special channels). Payloads above a threshold
are zstd-compressed (:mod:`._compress`). Large lists are stored as content-addressed chunks
(:mod:`._chunks`): the record's channel versions then also name each chunk, and a put that knows
its parent's storage (:class:`._chunks.ChannelRef`) sends only the chunks the parent lacks.
Small scalar values (``None``, booleans, numbers, strings of at most :data:`INLINE_STR_CHARS`
characters: step counters, routing flags, short answers) stay in the document instead, as the
official savers keep them: a blob row, its index entry and its lookup cost more than the value.
Checkpoints stored before kept them as blobs, and still read the same. The document is
compressed from :data:`DOCUMENT_COMPRESS_BYTES` on, lower than values' threshold: its channel
versions are mostly zeros.

Loading refuses pickles: a stored ``pickle`` payload raises
:class:`~agentmesh.core.CheckpointSerdeError` whatever the serde would do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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

from agentmesh.checkpoint.langgraph._chunks import (
    CHUNK_PREFIX,
    CHUNK_VERSION,
    LIST_TYPE,
    REFUSED_TYPES,
    ChannelRef,
    SplitList,
    chunk_channel,
    chunk_id_of,
    dumps,
    list_payload,
    split_list,
)
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
    "Encoding",
    "PutPlan",
    "address",
    "decode",
    "decode_with_refs",
    "encode_put",
    "encode_writes",
    "jsonable",
    "list_query",
    "tuple_config",
]

"""Serialisation types never loaded (arbitrary code on load)."""

_EMPTY = "empty"
"""The type tag other savers write for a channel without a value."""

INLINE_STR_CHARS = 256
"""Strings up to this length are kept in the checkpoint document, not as blobs. Each checkpoint
carries its own copy of an inline value, changed or not, so only small values are inlined."""

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1
_INLINE_TYPES = (type(None), bool, float)


def _inline(value: Any) -> bool:
    """Whether a channel value is kept in the checkpoint document (a small scalar)."""
    kind = type(cast(object, value))
    if kind in _INLINE_TYPES:
        return True
    if kind is int:
        return _INT64_MIN <= value <= _UINT64_MAX  # msgpack's range
    return kind is str and len(value) <= INLINE_STR_CHARS


DOCUMENT_COMPRESS_BYTES = 256
"""Checkpoint documents longer than this are compressed (when the saver compresses at all).
A document is mostly channel versions, whose 32-digit zero-padded counters halve under zstd
(a 640-byte document becomes about 320), for about 6 µs a put and 2.5 µs a read."""


def _document_threshold(encoding: Encoding) -> int | None:
    threshold = encoding.compress_threshold
    return None if threshold is None else min(threshold, DOCUMENT_COMPRESS_BYTES)


@dataclass(frozen=True, slots=True)
class Address:
    """Where a config points: thread, namespace and checkpoint id (None: the newest)."""

    thread_id: str
    namespace: str
    checkpoint_id: str | None


@dataclass(frozen=True, slots=True)
class PutPlan:
    """What one ``put`` sends to the store, the config it returns, and how its values are kept."""

    record: CheckpointRecord
    blobs: dict[tuple[str, str], Blob]
    config: RunnableConfig
    refs: dict[str, ChannelRef]
    chunks: dict[str, Blob] = field(default_factory=dict[str, Blob])
    """Every chunk of the lists this put cut, uncompressed, by id (for the saver's cache)."""


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
    type_, data = dumps(serde, value, what)
    return pack(type_, data, threshold=threshold)


def _load(serde: SerializerProtocol, blob: Blob, what: str) -> Any:
    type_, data = unpack(blob)
    if type_ in REFUSED_TYPES:
        raise CheckpointSerdeError(
            f"{what}: refusing to load a stored {type_!r} payload (loading it could run "
            "arbitrary code); AgentMesh savers do not write one, so another saver or tool "
            "wrote it"
        )
    try:
        return serde.loads_typed((type_, data))
    except Exception as exc:
        raise CheckpointSerdeError(
            f"{what}: cannot load a stored {type_!r} payload: {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class Encoding:
    """How a saver stores values.

    Attributes:
        compress_threshold: zstd-compress payloads longer than this (``None``: never).
        chunk_threshold: Store lists of at least this many serialised bytes as chunks
            (:mod:`._chunks`; ``None``: never).
    """

    compress_threshold: int | None = None
    chunk_threshold: int | None = None


def _split(
    serde: SerializerProtocol, encoding: Encoding, value: Any, what: str
) -> SplitList | Blob | None:
    if encoding.chunk_threshold is None:
        return None
    return split_list(serde, value, what, encoding.chunk_threshold)


def _store_value(
    serde: SerializerProtocol,
    encoding: Encoding,
    blobs: dict[tuple[str, str], Blob],
    known: set[str],
    cut: dict[str, Blob],
    channel: str,
    key: str,
    value: Any,
    what: str,
    split: SplitList | Blob | None,
) -> ChannelRef:
    """Add a channel value's blobs (whole, or a manifest and the chunks not ``known``).

    ``split`` is what :func:`_split` made of the value.
    """
    threshold = encoding.compress_threshold
    if split is None:
        blobs[(channel, key)] = _dump(serde, value, threshold, what)
        return ChannelRef(key, key)
    if isinstance(split, Blob):
        blobs[(channel, key)] = pack(split.type, split.data, threshold=threshold)
        return ChannelRef(key, key)
    store_version = f"{key}~{split.digest}"
    blobs[(channel, store_version)] = split.manifest
    for chunk_id, payload in split.payloads.items():
        cut[chunk_id] = Blob(split.chunk_type, payload)
        if chunk_id not in known:
            blobs[(chunk_channel(chunk_id), CHUNK_VERSION)] = pack(
                split.chunk_type, payload, threshold=threshold
            )
            known.add(chunk_id)
    return ChannelRef(key, store_version, split.ids)


def encode_put(
    serde: SerializerProtocol,
    encoding: Encoding,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
    parent: Mapping[str, ChannelRef] | None = None,
) -> PutPlan:
    """The record and new blobs of a ``put``, and the config ``put`` returns.

    Args:
        serde: The saver's serializer.
        encoding: How values are stored.
        config: The config ``put`` was given (thread, namespace, parent checkpoint).
        checkpoint: The checkpoint.
        metadata: Its metadata.
        new_versions: The channels whose values are new with this checkpoint.
        parent: How the parent checkpoint's values are stored, when the saver knows: unchanged
            channels and shared chunks are then referred to, not sent again. Without it, an
            unchanged list that is chunked is stored again (its chunks are content-addressed,
            so nothing is duplicated).

    Raises:
        CheckpointError: The config has no thread id.
        CheckpointSerdeError: A value cannot be serialised.
    """
    where = address(config, "put")
    checkpoint_id = checkpoint["id"]
    what = f"put of checkpoint {checkpoint_id!r} (thread {where.thread_id!r})"
    values: Mapping[str, Any] = checkpoint["channel_values"]
    document = {key: value for key, value in checkpoint.items() if key != "channel_values"}
    inline: dict[str, Any] = {}
    document["channel_values"] = inline
    blobs: dict[tuple[str, str], Blob] = {}
    known = {chunk for ref in parent.values() for chunk in ref.chunks} if parent else set[str]()
    refs: dict[str, ChannelRef] = {}
    cut: dict[str, Blob] = {}
    versions: dict[str, str] = {}
    for channel, version in checkpoint["channel_versions"].items():
        key = version_key(version)
        if channel not in values:
            versions[channel] = key
            continue
        value = values[channel]
        if _inline(value):
            inline[channel] = value  # no blob: the record lists no version to fetch
            continue
        versions[channel] = key
        where_value = f"{what}, channel {channel!r}"
        previous = parent.get(channel) if parent is not None else None
        if channel in new_versions and version_key(new_versions[channel]) == key:
            split = _split(serde, encoding, value, where_value)
        elif previous is not None and previous.version == key:
            split = previous  # unchanged since the parent: refer to how it is stored
        else:
            split = _split(serde, encoding, value, where_value)
            if not isinstance(split, SplitList):
                split = ChannelRef(key, key)  # stored whole by the put that made this version
        if isinstance(split, ChannelRef):
            ref = split
        else:
            ref = _store_value(
                serde, encoding, blobs, known, cut, channel, key, value, where_value, split
            )
        refs[channel] = ref
        versions[channel] = ref.store_version
    current = checkpoint["channel_versions"]
    for channel, version in new_versions.items():
        key = version_key(version)
        if channel in values and (channel not in current or version_key(current[channel]) != key):
            # a new version the checkpoint does not refer to: stored whole, as given
            blobs[(channel, key)] = _dump(
                serde, values[channel], encoding.compress_threshold, f"{what}, channel {channel!r}"
            )
    for ref in refs.values():
        for chunk_id in ref.chunks:
            versions[chunk_channel(chunk_id)] = CHUNK_VERSION
    stored_metadata = cast(
        dict[str, Any], jsonable(get_serializable_checkpoint_metadata(config, metadata))
    )
    run_id = stored_metadata.get("run_id")
    record = CheckpointRecord(
        thread_id=where.thread_id,
        namespace=where.namespace,
        checkpoint_id=checkpoint_id,
        parent_id=where.checkpoint_id,
        checkpoint=_dump(serde, document, _document_threshold(encoding), what),
        metadata=stored_metadata,
        channel_versions=versions,
        run_id=str(run_id) if run_id is not None else None,
    )
    config_out = tuple_config(where.thread_id, where.namespace, checkpoint_id)
    return PutPlan(record, blobs, config_out, refs, cut)


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


def _values(
    serde: SerializerProtocol, values: Mapping[str, Blob], what: str
) -> tuple[dict[str, Any], dict[str, tuple[str, ...]]]:
    """Channel values (chunked lists joined) and each chunked channel's chunk ids."""
    out: dict[str, Any] = {}
    lists: list[tuple[str, Blob]] = []
    chunks: dict[str, Blob] = {}
    for channel, blob in values.items():
        if channel.startswith(CHUNK_PREFIX):
            chunks[chunk_id_of(channel)] = blob
        elif blob.type == LIST_TYPE:
            lists.append((channel, blob))
        elif blob.type != _EMPTY:
            out[channel] = _load(serde, blob, f"{what}, channel {channel!r}")
    chunked: dict[str, tuple[str, ...]] = {}
    for channel, manifest in lists:
        where = f"{what}, channel {channel!r}"
        payload, chunked[channel] = list_payload(manifest, chunks, where)
        if isinstance(payload, Blob):
            out[channel] = _load(serde, payload, where)
        else:
            out[channel] = [_load(serde, element, where) for element in payload]
    return out, chunked


def decode_with_refs(
    serde: SerializerProtocol, stored: StoredCheckpoint
) -> tuple[CheckpointTuple, dict[str, ChannelRef]]:
    """:func:`decode`, and how each channel with a value is stored (for the next put).

    Raises:
        CheckpointSerdeError: A payload cannot be loaded (or is a pickle), or a chunk is
            missing.
    """
    record = stored.record
    what = f"checkpoint {record.checkpoint_id!r} (thread {record.thread_id!r})"
    document: dict[str, Any] = dict(_load(serde, record.checkpoint, what))
    values, chunked = _values(serde, stored.values, what)
    inline = document.get("channel_values")  # small scalars (none before they were inlined)
    if isinstance(inline, dict) and inline:
        values = {**cast(dict[str, Any], inline), **values}
    document["channel_values"] = values
    refs: dict[str, ChannelRef] = {}
    versions: Mapping[str, Any] = document.get("channel_versions") or {}
    for channel in values:
        stored_version = record.channel_versions.get(channel)
        if channel in versions and stored_version is not None:
            refs[channel] = ChannelRef(
                version_key(versions[channel]), stored_version, chunked.get(channel, ())
            )
    writes = sorted(stored.writes, key=lambda write: (write.task_path, write.task_id, write.idx))
    pending: list[PendingWrite] = [
        (write.task_id, write.channel, _load(serde, write.value, f"{what}, pending write"))
        for write in writes
    ]
    result = CheckpointTuple(
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
    return result, refs


def decode(serde: SerializerProtocol, stored: StoredCheckpoint) -> CheckpointTuple:
    """The checkpoint tuple of a stored checkpoint, pending writes in ``writes_sort_key`` order.

    Raises:
        CheckpointSerdeError: A payload cannot be loaded (or is a pickle), or a chunk is
            missing.
    """
    return decode_with_refs(serde, stored)[0]


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
