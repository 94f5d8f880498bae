"""Serialise CrewAI checkpoint documents with the package's safe serializer.

Documents are plain dicts whose values may be datetimes, UUIDs, pydantic models and the like:
:class:`agentmesh.checkpoint.serde.SafeSerializer` round-trips them without pickle. Anything it
refuses becomes :class:`~agentmesh.core.CheckpointSerdeError`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Protocol, cast

from agentmesh.checkpoint.store.base import Blob
from agentmesh.core.errors import CheckpointError, CheckpointSerdeError

__all__ = ["as_document", "dump_blob", "load_blob"]


class _TypedSerializer(Protocol):
    def dumps_typed(self, obj: Any) -> tuple[str, bytes]: ...

    def loads_typed(self, data: tuple[str, bytes]) -> Any: ...


@functools.cache
def _serializer() -> _TypedSerializer:
    from agentmesh.checkpoint.serde import SafeSerializer

    return cast(_TypedSerializer, SafeSerializer())


def dump_blob(value: object, what: str) -> Blob:
    """Serialise a value.

    Args:
        value: The value.
        what: What it is, for the error message (``"flow state of 'abc'"``).

    Returns:
        The blob.

    Raises:
        CheckpointSerdeError: The value cannot be serialised.
    """
    try:
        type_, data = _serializer().dumps_typed(value)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointSerdeError(f"cannot serialise the {what}: {exc}") from exc
    return Blob(type_, bytes(data))


def load_blob(blob: Blob, what: str) -> object:
    """Deserialise a blob.

    Args:
        blob: The blob.
        what: What it holds, for the error message.

    Returns:
        The value.

    Raises:
        CheckpointSerdeError: The payload is refused or corrupt.
    """
    try:
        return cast(object, _serializer().loads_typed((blob.type, blob.data)))
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointSerdeError(f"cannot read the stored {what}: {exc}") from exc


def as_document(value: object) -> dict[str, Any] | None:
    """A mapping as a dict with string keys (``None`` for anything else).

    Args:
        value: A deserialised value.

    Returns:
        The dict, or ``None``.
    """
    if not isinstance(value, Mapping):
        return None
    items = cast(Mapping[object, Any], value)
    return {str(key): item for key, item in items.items()}
