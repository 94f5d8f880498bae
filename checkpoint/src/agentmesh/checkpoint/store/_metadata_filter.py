"""The metadata filter of :meth:`CheckpointStore.list`, shared by the stores that filter in Python.

A checkpoint matches when its metadata has each wanted top-level key with a JSON-equal value:
``1`` equals ``1.0`` but ``true`` is not ``1``; objects and arrays are compared whole.

Example:
    >>> metadata_matches({"step": 1, "source": "loop"}, {"step": 1.0})
    True
    >>> metadata_matches({"flag": True}, {"flag": 1})
    False
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

__all__ = ["json_equal", "metadata_matches"]


def json_equal(left: object, right: object) -> bool:
    """Equality of JSON values (``true`` is not ``1``; ``1`` is ``1.0``).

    Args:
        left: A JSON value.
        right: Another.

    Returns:
        Whether they are equal as JSON.
    """
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    if isinstance(left, dict) and isinstance(right, dict):
        left_map, right_map = cast(dict[str, object], left), cast(dict[str, object], right)
        return left_map.keys() == right_map.keys() and all(
            json_equal(value, right_map[key]) for key, value in left_map.items()
        )
    if isinstance(left, list) and isinstance(right, list):
        left_list, right_list = cast(list[object], left), cast(list[object], right)
        return len(left_list) == len(right_list) and all(
            json_equal(a, b) for a, b in zip(left_list, right_list, strict=True)
        )
    if isinstance(left, dict | list) or isinstance(right, dict | list):
        return False
    return bool(left == right)


def metadata_matches(metadata: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """Whether metadata has each wanted top-level key with a JSON-equal value.

    Args:
        metadata: A checkpoint's metadata.
        wanted: The filter.

    Returns:
        Whether the checkpoint matches.
    """
    return all(
        key in metadata and json_equal(metadata[key], value) for key, value in wanted.items()
    )
