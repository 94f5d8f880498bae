"""JSON text forms of attributes, events and details, for stores that keep them as text.

The readers also accept the text :func:`~agentmesh.collector.store.span_table.span_table`
writes, where a NaN or infinite double is JSON ``null``: it is read back as NaN (attribute values
are never null otherwise). They parse with ``orjson`` (reading a run's spans back is mostly JSON
parsing: about 3x faster than the standard library's), falling back to the standard library for
what ``orjson`` refuses (``NaN`` literals written by :func:`attributes_to_json`, integers past
64 bits).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import cast

import orjson

from agentmesh.collector.detection import JsonValue
from agentmesh.collector.model import AttributeValue, SpanEventRecord

__all__ = [
    "attributes_from_json",
    "attributes_to_json",
    "details_from_json",
    "details_to_json",
    "events_from_json",
    "events_to_json",
]


def _loads(text: str) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def attributes_to_json(attributes: Mapping[str, AttributeValue]) -> str:
    """Serialise attributes.

    Args:
        attributes: The attributes.

    Returns:
        A JSON object.
    """
    return _dumps(dict(attributes))


def attributes_from_json(text: str) -> dict[str, AttributeValue]:
    """Read attributes written by :func:`attributes_to_json`.

    Args:
        text: The JSON object.

    Returns:
        The attributes.
    """
    attributes = cast(dict[str, AttributeValue], _loads(text))
    return _restore_nan(attributes) if "null" in text else attributes


def _restore_nan(attributes: dict[str, AttributeValue]) -> dict[str, AttributeValue]:
    """Turn the ``null`` written for non-finite doubles back into NaN, in place."""
    raw = cast(dict[str, object], attributes)  # as parsed: values may be None
    for key, value in raw.items():
        if value is None:
            raw[key] = math.nan
        elif isinstance(value, list) and None in value:
            items = cast(list[object], value)
            raw[key] = [math.nan if item is None else item for item in items]
    return attributes


def events_to_json(events: tuple[SpanEventRecord, ...]) -> str:
    """Serialise span events.

    Args:
        events: The events.

    Returns:
        A JSON array of ``{"name", "time_ns", "attributes"}`` objects.
    """
    return _dumps(
        [
            {"name": event.name, "time_ns": event.time_ns, "attributes": dict(event.attributes)}
            for event in events
        ]
    )


def events_from_json(text: str) -> tuple[SpanEventRecord, ...]:
    """Read span events written by :func:`events_to_json`.

    Args:
        text: The JSON array.

    Returns:
        The events.
    """
    if text == "[]":
        return ()
    items = cast(list[dict[str, object]], _loads(text))
    nulls = "null" in text
    return tuple(
        SpanEventRecord(
            name=cast(str, item["name"]),
            time_ns=cast(int, item["time_ns"]),
            attributes=_restore_nan(attributes) if nulls else attributes,
        )
        for item in items
        for attributes in (cast(dict[str, AttributeValue], item["attributes"]),)
    )


def details_to_json(details: Mapping[str, JsonValue]) -> str:
    """Serialise a detection's details.

    Args:
        details: The details.

    Returns:
        A JSON object.
    """
    return _dumps(dict(details))


def details_from_json(text: str) -> dict[str, JsonValue]:
    """Read details written by :func:`details_to_json`.

    Args:
        text: The JSON object.

    Returns:
        The details.
    """
    return cast(dict[str, JsonValue], _loads(text))
