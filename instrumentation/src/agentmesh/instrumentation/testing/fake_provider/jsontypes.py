"""JSON helpers: parse request bodies and read fields of ``dict[str, object]`` values safely."""

from __future__ import annotations

import json
from typing import cast

__all__ = [
    "JSONObject",
    "as_list",
    "as_object",
    "get_bool",
    "get_str",
    "parse_json_object",
]

JSONObject = dict[str, object]
"""A decoded JSON object (request bodies, response bodies)."""


def parse_json_object(raw: bytes | str) -> JSONObject | None:
    """Decode ``raw`` as a JSON object.

    Args:
        raw: The request body.

    Returns:
        The object, or ``None`` when ``raw`` is not valid JSON or not a JSON object.
    """
    try:
        decoded: object = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return as_object(decoded)


def as_object(value: object) -> JSONObject | None:
    """Return ``value`` as a JSON object, or ``None`` when it is not a ``dict``.

    Args:
        value: A decoded JSON value.

    Returns:
        The same dictionary, typed, or ``None``.
    """
    if isinstance(value, dict):
        return cast(JSONObject, value)
    return None


def as_list(value: object) -> list[object]:
    """Return ``value`` as a list, or an empty list when it is not one.

    Args:
        value: A decoded JSON value.

    Returns:
        The same list, typed, or ``[]``.
    """
    if isinstance(value, list):
        return cast(list[object], value)
    return []


def get_str(obj: JSONObject, key: str) -> str | None:
    """Return ``obj[key]`` when it is a string.

    Args:
        obj: A JSON object.
        key: The field name.

    Returns:
        The string, or ``None`` when missing or of another type.
    """
    value = obj.get(key)
    return value if isinstance(value, str) else None


def get_bool(obj: JSONObject, key: str) -> bool:
    """Return ``obj[key]`` when it is ``true``, else ``False``.

    Args:
        obj: A JSON object.
        key: The field name.

    Returns:
        Whether the field is the JSON value ``true``.
    """
    return obj.get(key) is True
