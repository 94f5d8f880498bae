"""Large lists stored as content-addressed chunks, so a growing history is stored about once.

LangGraph's ``messages`` channel holds the whole conversation, and every step's checkpoint has
a new version of it. Stored whole at each version, as the official savers store it, a thread of
N steps keeps O(N²) bytes: the many-gigabyte threads their users report. Here, a list whose
serialised elements add up to :data:`LIST_MIN_BYTES` or more is stored as:

* a *manifest* under the channel's version (type :data:`LIST_TYPE`): the chunks' type, and
  their ids and element counts, in order;
* *chunks*: runs of consecutive elements, each serialised by the saver's serde on its own,
  written back to back (:data:`MSGPACK_CHUNK_TYPE`, when they are all LangGraph ``msgpack``:
  the list then loads in one call) or framed with their types (:data:`CHUNK_TYPE`),
  compressed, and stored once per thread and namespace under a pseudo channel named for the
  chunk's content hash (:func:`chunk_channel`, version :data:`CHUNK_VERSION`).

Two versions of a list share every chunk except those around what changed, so a step that
appends one message stores that message (and the few elements chunked with it), not the history.
Chunk boundaries depend only on the elements' content: a chunk ends after an element of at
least :data:`ALONE_BYTES`, after an element whose CRC picks it (one in :data:`FANOUT`) once the
chunk holds :data:`MIN_BYTES`, or when it reaches :data:`MAX_BYTES`. Dropping the oldest
messages of a trimmed history therefore moves no boundary past the first chunk.

A checkpoint record lists every chunk it needs among its channel versions, so a store's ``get``
fetches them with the channel values in the same query and pruning keeps a chunk exactly as
long as a kept checkpoint refers to it: no store knows about chunks.

Example:
    >>> from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    >>> serde = JsonPlusSerializer()
    >>> history = [{"role": "user", "content": f"turn {n} " * 300} for n in range(8)]
    >>> first = split_list(serde, history, "example")
    >>> second = split_list(serde, history[1:] + [{"role": "ai", "content": "new " * 600}], "")
    >>> first is not None and second is not None
    True
    >>> len(set(second.ids) - set(first.ids))  # only the chunk holding the new message
    1
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from agentmesh.checkpoint.langgraph._compress import unpack
from agentmesh.checkpoint.langgraph.strict_serde import StrictJsonPlusSerializer
from agentmesh.checkpoint.store.base import Blob
from agentmesh.core.errors import CheckpointSerdeError

__all__ = [
    "ALONE_BYTES",
    "CHUNK_PREFIX",
    "CHUNK_TYPE",
    "CHUNK_VERSION",
    "FANOUT",
    "LIST_MIN_BYTES",
    "LIST_TYPE",
    "MAX_BYTES",
    "MIN_BYTES",
    "MSGPACK_CHUNK_TYPE",
    "REFUSED_TYPES",
    "ChannelRef",
    "SplitList",
    "chunk_channel",
    "chunk_id_of",
    "dumps",
    "is_chunk_channel",
    "list_payload",
    "split_list",
]

LIST_MIN_BYTES = 4096
"""A list is chunked when its serialised elements add up to at least this many bytes (the
savers' default ``chunk_threshold``)."""

ALONE_BYTES = 1024
"""An element at least this large ends its chunk (large messages are chunks of their own)."""

MIN_BYTES = 512
"""Smaller elements are grouped until a chunk holds at least this many bytes..."""

FANOUT = 4
"""...and then end it with probability 1/FANOUT (by their CRC)."""

MAX_BYTES = 65536
"""A chunk ends once it holds this many bytes, whatever its elements."""

LIST_TYPE = "am-list"
"""The type tag of a manifest (never a serde's tag)."""

CHUNK_TYPE = "am-chunk"
"""The type tag of a chunk of framed elements, each with its serde type (``+zstd`` when
compressed)."""

MSGPACK_CHUNK_TYPE = "am-msgpack"
"""The type tag of a chunk of ``msgpack`` elements written back to back (LangGraph's serde;
``+zstd`` when compressed)."""

CHUNK_PREFIX = "__amc:"
"""Pseudo channels holding chunks are named this prefix and the chunk id."""

CHUNK_VERSION = "0"
"""The version every chunk is stored under (its id already names its content)."""

_FRAME = struct.Struct("<BI")
_PREFIX_LENGTH = len(CHUNK_PREFIX)


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """How one channel's value at one version is stored.

    Attributes:
        version: The channel's version, as the store keys versions.
        store_version: The version the store holds the value under: ``version`` for a value
            stored whole, ``"{version}~{digest}"`` for a manifest.
        chunks: The manifest's chunk ids in order (empty for a value stored whole).
    """

    version: str
    store_version: str
    chunks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SplitList:
    """A list cut into chunks.

    Attributes:
        manifest: The manifest blob.
        digest: A short hash of the manifest, part of its store version.
        ids: The chunk ids in order (a chunk may appear more than once).
        payloads: Each distinct chunk's payload, uncompressed, by id.
        chunk_type: The chunks' type tag.
    """

    manifest: Blob
    digest: str
    ids: tuple[str, ...]
    payloads: Mapping[str, bytes]
    chunk_type: str


_JSONPLUS: Final = (JsonPlusSerializer, StrictJsonPlusSerializer)
"""Serializers that write a list as the msgpack array of its elements' payloads."""


def chunk_channel(chunk_id: str) -> str:
    """The pseudo channel a chunk is stored under."""
    return CHUNK_PREFIX + chunk_id


def chunk_id_of(channel: str) -> str:
    """The chunk id a chunk's pseudo channel names (the inverse of :func:`chunk_channel`)."""
    return channel[_PREFIX_LENGTH:]


def is_chunk_channel(channel: str) -> bool:
    """Whether a stored channel name is a chunk's pseudo channel."""
    return channel.startswith(CHUNK_PREFIX)


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _chunk_ends(size: int, data: bytes, held: int) -> bool:
    if size >= ALONE_BYTES or held >= MAX_BYTES:
        return True
    return held >= MIN_BYTES and zlib.crc32(data) % FANOUT == 0


REFUSED_TYPES: Final = frozenset({"pickle"})
"""Payload types never written nor loaded: loading them can run arbitrary code."""


def dumps(serde: SerializerProtocol, value: Any, what: str) -> tuple[str, bytes]:
    """The serde's ``(type, bytes)`` of a value.

    Raises:
        CheckpointSerdeError: The serde cannot serialise it (``what`` says where it was), or
            wrote it as a pickle (which would be refused when read back).
    """
    try:
        type_, data = serde.dumps_typed(value)
    except Exception as exc:
        raise CheckpointSerdeError(
            f"{what}: cannot serialise a {type(value).__name__}: {exc}"
        ) from exc
    if type_ in REFUSED_TYPES:
        raise CheckpointSerdeError(
            f"{what}: the serializer wrote a {type(value).__name__} as a {type_!r} payload, "
            "which AgentMesh savers do not store (loading it could run arbitrary code, so it "
            "would be refused when read back); make the value JSON-serialisable (a dataclass, "
            "a Pydantic model, plain data) or drop pickle_fallback=True from the serializer"
        )
    return type_, data


def _msgpack_array_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x90 | count,))
    if count < 65536:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _plain_msgpack(serde: SerializerProtocol, types: Sequence[str]) -> bool:
    """Whether a list of these element types is the msgpack array of their payloads.

    LangGraph's ``JsonPlusSerializer`` writes a list as a msgpack array of its elements, so
    when every element is ``msgpack`` the list's payload is the array header followed by the
    elements' payloads: one load instead of one per element, and no second serialisation of
    a list too small to cut.
    """
    return type(serde) in _JSONPLUS and all(type_ == "msgpack" for type_ in types)


def _array(count: int, parts: Sequence[bytes]) -> Blob:
    return Blob("msgpack", b"".join([_msgpack_array_header(count), *parts]))


def split_list(
    serde: SerializerProtocol, value: Any, what: str, min_bytes: int = LIST_MIN_BYTES
) -> SplitList | Blob | None:
    """Cut a list into content-defined chunks, or say it is better stored whole.

    Args:
        serde: The saver's serializer (each element is serialised on its own).
        value: A channel's value; only a ``list`` of two or more elements whose serialised
            size reaches ``min_bytes`` is cut.
        what: What is being stored, for errors.
        min_bytes: The smallest list cut (:data:`LIST_MIN_BYTES` by default).

    Returns:
        The chunks; or, for a smaller list, its whole payload when it can be made from the
        elements' (LangGraph's serde); or ``None`` (not a list, or the serde must serialise it
        whole).

    Raises:
        CheckpointSerdeError: An element cannot be serialised.
    """
    if type(value) is not list:  # a subclass may carry more than its items: stored whole
        return None
    items = cast(list[Any], value)
    if len(items) < 2:
        return None
    types: list[str] = []
    datas: list[bytes] = []
    total = 0
    for item in items:
        type_, data = dumps(serde, item, f"{what}, in a list")
        types.append(type_)
        datas.append(data)
        total += len(data)
    plain = _plain_msgpack(serde, types)
    if total < min_bytes:
        return _array(len(datas), datas) if plain else None
    chunk_type = MSGPACK_CHUNK_TYPE if plain else CHUNK_TYPE
    type_tag = chunk_type.encode("ascii") + b"\0"
    counts: list[str] = []
    ids: list[str] = []
    payloads: dict[str, bytes] = {}
    parts: list[bytes] = []
    held = 0
    last = len(datas) - 1
    for n, data in enumerate(datas):
        if plain:
            parts.append(data)
        else:
            type_b = types[n].encode("ascii")
            parts += (_FRAME.pack(len(type_b), len(data)), type_b, data)
        held += len(data)
        if n == last or _chunk_ends(len(data), data, held):
            payload = b"".join(parts)
            # sha256: content addressing must not collide by design, and on current CPUs it
            # runs in hardware at about twice blake2b's speed
            hasher = hashlib.sha256(type_tag)
            hasher.update(payload)
            chunk_id = _b64(hasher.digest()[:15])
            payloads.setdefault(chunk_id, payload)
            ids.append(chunk_id)
            counts.append(str(len(parts) if plain else len(parts) // 3))
            parts = []
            held = 0
    data = f"{chunk_type};{len(datas)};{','.join(ids)};{','.join(counts)}".encode("ascii")
    digest = _b64(hashlib.sha256(data).digest()[:6])
    return SplitList(Blob(LIST_TYPE, data), digest, tuple(ids), payloads, chunk_type)


@dataclass(frozen=True, slots=True)
class _Manifest:
    chunk_type: str
    total: int
    ids: list[str]
    counts: list[int]


def _manifest(manifest: Blob, what: str) -> _Manifest:
    """Parse ``"{chunk type};{elements};{id,id,...};{count,count,...}"``."""
    try:
        chunk_type, total, ids, counts = manifest.data.decode("ascii").split(";")
        parsed = _Manifest(
            chunk_type, int(total), ids.split(","), list(map(int, counts.split(",")))
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointSerdeError(f"{what}: a stored list's manifest is malformed: {exc}") from exc
    if len(parsed.ids) != len(parsed.counts) or sum(parsed.counts) != parsed.total:
        raise CheckpointSerdeError(f"{what}: a stored list's manifest does not add up")
    return parsed


def list_payload(
    manifest: Blob, chunks: Mapping[str, Blob], what: str
) -> tuple[Blob | list[Blob], tuple[str, ...]]:
    """A chunked list's payload and chunk ids.

    The payload is the whole list's ``msgpack`` blob, or its elements in order.

    Args:
        manifest: The list's manifest.
        chunks: Stored chunks by id (at least those the manifest lists).
        what: What is being loaded, for errors.

    Raises:
        CheckpointSerdeError: The manifest or a chunk is missing or malformed.
    """
    parsed = _manifest(manifest, what)
    chunk_type = parsed.chunk_type
    payloads: list[bytes] = []
    for chunk_id in parsed.ids:
        blob = chunks.get(chunk_id)
        if blob is None:
            raise CheckpointSerdeError(
                f"{what}: chunk {chunk_id!r} of a stored list is missing from the store"
            )
        type_, payload = unpack(blob)
        if type_ != chunk_type:
            raise CheckpointSerdeError(
                f"{what}: chunk {chunk_id!r} has type {type_!r}, the manifest says {chunk_type!r}"
            )
        payloads.append(payload)
    ids = tuple(parsed.ids)
    if chunk_type == MSGPACK_CHUNK_TYPE:
        return _array(parsed.total, payloads), ids
    if chunk_type != CHUNK_TYPE:
        raise CheckpointSerdeError(f"{what}: unknown chunk type {chunk_type!r}")
    out: list[Blob] = []
    for chunk_id, count, payload in zip(parsed.ids, parsed.counts, payloads, strict=True):
        frames = _frames(payload, chunk_id, what)
        if len(frames) != count:
            raise CheckpointSerdeError(
                f"{what}: chunk {chunk_id!r} holds {len(frames)} elements, not {count}"
            )
        out.extend(frames)
    return out, ids


def _frames(payload: bytes, chunk_id: str, what: str) -> Sequence[Blob]:
    out: list[Blob] = []
    view = memoryview(payload)
    at = 0
    end = len(payload)
    try:
        while at < end:
            type_len, data_len = _FRAME.unpack_from(view, at)
            at += _FRAME.size
            type_ = bytes(view[at : at + type_len]).decode("ascii")
            at += type_len
            if at + data_len > end:
                raise ValueError("truncated element")
            out.append(Blob(type_, bytes(view[at : at + data_len])))
            at += data_len
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointSerdeError(f"{what}: chunk {chunk_id!r} is malformed: {exc}") from exc
    return out
