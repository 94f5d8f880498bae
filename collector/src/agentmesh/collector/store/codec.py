"""JSON text forms of attributes, events and details, for stores that keep them as text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast

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
    return cast(dict[str, AttributeValue], json.loads(text))


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
    items = cast(list[dict[str, object]], json.loads(text))
    return tuple(
        SpanEventRecord(
            name=cast(str, item["name"]),
            time_ns=cast(int, item["time_ns"]),
            attributes=cast(dict[str, AttributeValue], item["attributes"]),
        )
        for item in items
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
    return cast(dict[str, JsonValue], json.loads(text))
