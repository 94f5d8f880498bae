"""The context that crosses a handoff: canonical JSON, its digest and its size.

Framework-agnostic: adapters pass the state a receiving agent starts from; two equal states
give the same digest whatever the key order. Values JSON cannot hold are turned into JSON
through ``model_dump()`` when they have one (pydantic models, LangChain messages), else
through ``str()``. Numbers are digested by value: a float equal to an integer digests as that
integer, so a state schema turning ``1`` into ``1.0`` (a pydantic ``float`` field) loses nothing
(booleans stay booleans; ``1.5``, ``nan`` and ``inf`` stay floats).

:func:`bounded_digest` digests values of any size with bounded work (tool-call arguments and
results): small values exactly as :func:`context_digest` does, large ones through a canonical
summary (long texts by length and their head and tail, long collections by length and their
first items).

Example:
    >>> d = context_digest({"b": 1, "a": [1, 2]})
    >>> d.size, d.digest == context_digest({"a": [1, 2], "b": 1}).digest
    (17, True)
    >>> d.digest[:7]
    'sha256:'
    >>> context_digest({"score": 1.0}) == context_digest({"score": 1})
    True
    >>> context_digest({"score": True}) == context_digest({"score": 1})
    False
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, cast

__all__ = ["ContextDigest", "bounded_digest", "canonical_json", "capped_text", "context_digest"]

_TEXT_CAP: Final = 16_384
"""Characters of a text digested verbatim; a longer one by its length, head and tail."""
_ITEMS_CAP: Final = 256
"""Items of a list or mapping digested; a longer one by its length and its first items."""
_DEPTH_CAP: Final = 16
"""Nesting levels digested; deeper values by their type name."""
_BUDGET: Final = 8_192
"""Values visited in all; the rest by their type name (bounds the work on any input)."""


_INTEGRAL_FLOAT_HINTS: Final = (".0", "e+")
"""Every integral float's JSON (Python's ``repr``) holds one: ``1.0``, ``-0.0``, ``1e+16``."""


@dataclass(frozen=True, slots=True)
class ContextDigest:
    """Digest and size of a handoff context.

    Attributes:
        digest: ``"sha256:"`` followed by the hex SHA-256 of the canonical JSON, integral
            floats written as integers.
        size: Length in bytes of that JSON (UTF-8).
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

    Equal states give equal digests, also when a schema converted numbers on the way: a float
    equal to an integer counts as that integer (``1.0`` as ``1``, ``1e+20`` as
    ``100000000000000000000``), so the two ends of a handoff agree when the receiving end's
    state schema turned an ``int`` into a ``float`` or back. A value that changed (``1.5``
    against ``1``, an integer too large for a float to hold exactly) still differs, and a
    boolean never equals a number.

    Args:
        value: The state the receiving agent starts from.

    Returns:
        Its digest and size.

    Example:
        >>> context_digest([1, 2.0, -0.0]) == context_digest([1.0, 2, 0])
        True
        >>> context_digest([1.5]) == context_digest([1])
        False
    """
    data = _numbers_by_value(canonical_json(value)).encode("utf-8")
    return ContextDigest("sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def _numbers_by_value(text: str) -> str:
    """Rewrite canonical JSON with integral floats as integers (the text itself without any)."""
    if not any(hint in text for hint in _INTEGRAL_FLOAT_HINTS):
        return text  # no integral float in it: nothing to rewrite (the usual case)
    try:
        value = json.loads(text, parse_float=_integral_as_int)
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):  # a number too long to read back…
        return text


def _integral_as_int(literal: str) -> int | float:
    """A JSON float literal as an ``int`` when integral, else as a ``float``."""
    number = float(literal)
    return int(number) if number.is_integer() else number


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


class _Summary:
    """Reduce a value to a JSON-ready value of bounded size (canonical: equal in, equal out)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = _BUDGET

    def of(self, value: object, depth: int) -> object:
        self.left -= 1
        if self.left < 0 or depth > _DEPTH_CAP:
            return {"$cut": type(value).__name__}
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return value if len(value) <= _TEXT_CAP else _long_text(value)
        if isinstance(value, Mapping):
            return self._mapping(cast("Mapping[object, object]", value), depth)
        if isinstance(value, list | tuple):
            items = cast("list[object] | tuple[object, ...]", value)
            summary: list[object] = [self.of(item, depth + 1) for item in items[:_ITEMS_CAP]]
            if len(items) > _ITEMS_CAP:
                summary.append({"$items": len(items)})
            return summary
        dumped = _to_json(value)
        if isinstance(dumped, str):
            return dumped if len(dumped) <= _TEXT_CAP else _long_text(dumped)
        return self.of(dumped, depth + 1)

    def _mapping(self, mapping: Mapping[object, object], depth: int) -> object:
        pairs = ((str(k), k) for k in mapping)
        if len(mapping) <= _ITEMS_CAP:
            keys = sorted(pairs, key=_first)
        else:  # the smallest keys, in a canonical order, and the count
            keys = heapq.nsmallest(_ITEMS_CAP, pairs, key=_first)
        summary: dict[str, object] = {text: self.of(mapping[k], depth + 1) for text, k in keys}
        if len(mapping) > _ITEMS_CAP:
            summary["$items"] = len(mapping)
        return summary


def _first(pair: tuple[str, object]) -> str:
    return pair[0]


def _long_text(text: str) -> dict[str, object]:
    half = _TEXT_CAP // 2
    edges = (text[:half] + text[-half:]).encode("utf-8", errors="surrogatepass")
    return {"$len": len(text), "$sha256": hashlib.sha256(edges).hexdigest()}


def bounded_digest(value: object) -> str:
    """Digest a value of any size with bounded work (tool-call arguments and results).

    Canonical like :func:`context_digest` (the same arguments in another key order give the
    same digest). Texts up to 16 384 characters and collections up to 256 items count in
    full; beyond, a text counts by its length and its first and last 8 192 characters, a
    collection by its length and its first 256 items (a mapping's by sorted key); at most
    8 192 values and 16 nesting levels are visited. Two large values differing only in what
    is left out get the same digest.

    Args:
        value: Any value; non-JSON values go through ``model_dump()`` or ``str()``.

    Returns:
        ``"sha256:"`` followed by a hex SHA-256.

    Example:
        >>> bounded_digest({"q": "x", "n": 1}) == bounded_digest({"n": 1, "q": "x"})
        True
        >>> bounded_digest({"q": "x"}) == bounded_digest({"q": "y"})
        False
    """
    return context_digest(_Summary().of(value, 0)).digest
