"""The context that crosses a handoff: canonical JSON, its digest and its size.

Framework-agnostic: adapters pass the state a receiving agent starts from; two equal states
give the same digest whatever the key order. Values JSON cannot hold are turned into JSON
through ``model_dump()`` when they have one (pydantic models, LangChain messages), else
through ``str()``.

Example:
    >>> d = context_digest({"b": 1, "a": [1, 2]})
    >>> d.size, d.digest == context_digest({"a": [1, 2], "b": 1}).digest
    (17, True)
    >>> d.digest[:7]
    'sha256:'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

__all__ = ["ContextDigest", "canonical_json", "capped_text", "context_digest"]


@dataclass(frozen=True, slots=True)
class ContextDigest:
    """Digest and size of a handoff context.

    Attributes:
        digest: ``"sha256:"`` followed by the hex SHA-256 of the canonical JSON.
        size: Length in bytes of the canonical JSON (UTF-8).
    """

    digest: str
    size: int


def _to_json(value: object) -> object:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return cast("Callable[[], object]", dump)()
        except Exception:  # noqa: BLE001 - a broken model_dump falls back on str()
            return str(value)
    if isinstance(value, set | frozenset):
        items = [json.dumps(v, sort_keys=True, default=str) for v in cast("set[object]", value)]
        return sorted(items)
    return str(value)


def canonical_json(value: object) -> str:
    """Serialise a value as canonical JSON: sorted keys, compact separators.

    Args:
        value: Any value; non-JSON values go through ``model_dump()`` or ``str()``.

    Returns:
        The JSON text.

    Example:
        >>> canonical_json({"b": None, "a": (1, "x")})
        '{"a":[1,"x"],"b":null}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_to_json
    )


def context_digest(value: object) -> ContextDigest:
    """Digest the context (state) that crosses a handoff.

    Args:
        value: The state the receiving agent starts from.

    Returns:
        Its digest and size.
    """
    data = canonical_json(value).encode("utf-8")
    return ContextDigest("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def capped_text(text: str, cap: int) -> tuple[str, bool]:
    """Cut a text to at most ``cap`` bytes of UTF-8, never in the middle of a character.

    Args:
        text: The text.
        cap: Largest size in bytes.

    Returns:
        The text (maybe cut) and whether it was cut.

    Example:
        >>> capped_text("héllo", 2)
        ('h', True)
        >>> capped_text("hi", 2)
        ('hi', False)
    """
    if len(text) <= cap // 4:  # cannot exceed the cap even at 4 bytes per character
        return text, False
    encoded = text.encode("utf-8")
    if len(encoded) <= cap:
        return text, False
    return encoded[:cap].decode("utf-8", errors="ignore"), True
