"""Spans as an Arrow table of the store's columns, built without a store.

:func:`span_table` is a pure function: a worker process can call it on the spans it decoded
and hand the table to :meth:`~agentmesh.collector.store.duckdb_store.DuckDBStore.write_span_table`
in the main process (Arrow tables pickle cheaply and DuckDB appends them without copying into
Python objects). Attributes, events and resource attributes become compact JSON text (written
with ``orjson``), read back by :mod:`~agentmesh.collector.store.codec`; the model, tokens and
cost of ``chat`` spans get their own columns (:func:`~agentmesh.collector.store.usage.chat_usage`).

Every value decodes back to the value written, with one exception: a double that is NaN or
infinite is written as JSON ``null`` (valid JSON, which DuckDB's JSON functions can query,
where ``NaN`` text would make them fail) and read back as NaN, so an infinity comes back as
NaN.

Example:
    >>> from agentmesh.collector.testing import SpanFactory
    >>> f = SpanFactory()
    >>> table = span_table([f.workflow("w"), f.chat(parent=None, model="m", input_tokens=3)])
    >>> table.schema == SPAN_SCHEMA, table.num_rows
    (True, 2)
    >>> table.column("model").to_pylist(), table.column("input_tokens").to_pylist()
    ([None, 'm'], [None, 3])
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast

import orjson
import pyarrow as pa  # pyright: ignore[reportMissingTypeStubs]

from agentmesh.collector.model import SpanEventRecord, SpanRecord, amount_of, count_of
from agentmesh.core import semconv

__all__ = ["SPAN_SCHEMA", "span_table"]

_pa: Any = pa  # pyarrow ships without complete type information

SPAN_SCHEMA: Final[Any] = _pa.schema(
    [
        _pa.field("trace_id", _pa.string()),
        _pa.field("span_id", _pa.string()),
        _pa.field("parent_span_id", _pa.string()),
        _pa.field("name", _pa.string()),
        _pa.field("kind", _pa.string()),
        _pa.field("start_ns", _pa.int64()),
        _pa.field("end_ns", _pa.int64()),
        _pa.field("status_code", _pa.string()),
        _pa.field("status_message", _pa.string()),
        _pa.field("operation", _pa.string()),
        _pa.field("run_id", _pa.string()),
        _pa.field("service_name", _pa.string()),
        _pa.field("scope_name", _pa.string()),
        _pa.field("attributes", _pa.string()),
        _pa.field("events", _pa.string()),
        _pa.field("resource", _pa.string()),
        _pa.field("model", _pa.string()),
        _pa.field("input_tokens", _pa.int64()),
        _pa.field("output_tokens", _pa.int64()),
        _pa.field("cost_usd", _pa.float64()),
    ]
)
"""The ``spans`` table's columns (a ``pyarrow.Schema``), in the order the stores insert them."""

_CHAT: Final = semconv.Operation.CHAT
_OPERATION: Final = semconv.GEN_AI_OPERATION_NAME
_RUN_ID: Final = semconv.AGENTMESH_RUN_ID
_RESPONSE_MODEL: Final = semconv.GEN_AI_RESPONSE_MODEL
_REQUEST_MODEL: Final = semconv.GEN_AI_REQUEST_MODEL
_INPUT_TOKENS: Final = semconv.GEN_AI_USAGE_INPUT_TOKENS
_OUTPUT_TOKENS: Final = semconv.GEN_AI_USAGE_OUTPUT_TOKENS
_COST: Final = semconv.AGENTMESH_COST_USD
_NO_EVENTS: Final = b"[]"
_DUMPS: Final[Callable[[object], bytes]] = orjson.dumps
_STRING: Final[Any] = _pa.string()
_INT64: Final[Any] = _pa.int64()
_FLOAT64: Final[Any] = _pa.float64()


def _finite(value: object) -> object:
    """``value`` with every NaN or infinite double replaced by ``None`` (as ``orjson`` does)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in cast(dict[object, object], value).items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in cast(Sequence[object], value)]
    return value


def _fallback(value: object) -> bytes:
    """JSON for what ``orjson`` refuses (integers beyond 64 bits, lone surrogates)."""
    text = json.dumps(_finite(value), ensure_ascii=True, separators=(",", ":"))
    return text.encode()


def _json(value: object) -> bytes:
    try:
        return _DUMPS(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _fallback(value)


def _attributes_json(attributes: Mapping[str, object]) -> bytes:
    return _json(attributes if isinstance(attributes, dict) else dict(attributes))


def _events_json(events: tuple[SpanEventRecord, ...]) -> bytes:
    if not events:
        return _NO_EVENTS
    return _json(
        [
            {"name": event.name, "time_ns": event.time_ns, "attributes": dict(event.attributes)}
            for event in events
        ]
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def span_table(spans: Sequence[SpanRecord]) -> Any:
    """Build the ``spans`` rows of some spans as an Arrow table with :data:`SPAN_SCHEMA`.

    Pure and thread-safe: it needs no store, logging or event loop, so it runs in any worker
    process. Duplicates are kept (the store drops them).

    Args:
        spans: The spans.

    Returns:
        A ``pyarrow.Table`` with one row per span, in order.
    """
    resources: dict[int, bytes] = {}  # spans of one resource share its mapping: encode it once
    attributes: list[bytes] = []
    events: list[bytes] = []
    resource: list[bytes] = []
    operations: list[str | None] = []
    run_ids: list[str | None] = []
    models: list[str | None] = []
    inputs: list[int | None] = []
    outputs: list[int | None] = []
    costs: list[float | None] = []
    for span in spans:
        attrs = span.attributes
        attributes.append(_attributes_json(attrs))
        events.append(_events_json(span.events) if span.events else _NO_EVENTS)
        res = span.resource_attributes
        encoded = resources.get(id(res))
        if encoded is None:
            encoded = resources[id(res)] = _attributes_json(res)
        resource.append(encoded)
        operation = _str_or_none(attrs.get(_OPERATION))
        operations.append(operation)
        run_ids.append(_str_or_none(attrs.get(_RUN_ID)))
        if operation == _CHAT:  # chat_usage(span), inlined: it is a third of the time here
            models.append(
                _str_or_none(attrs.get(_RESPONSE_MODEL)) or _str_or_none(attrs.get(_REQUEST_MODEL))
            )
            inputs.append(count_of(attrs.get(_INPUT_TOKENS)))
            outputs.append(count_of(attrs.get(_OUTPUT_TOKENS)))
            costs.append(amount_of(attrs.get(_COST)))
        else:
            models.append(None)
            inputs.append(None)
            outputs.append(None)
            costs.append(None)
    del resources  # ids are only meaningful while the spans are alive
    arrays = [
        _pa.array([s.trace_id for s in spans], _STRING),
        _pa.array([s.span_id for s in spans], _STRING),
        _pa.array([s.parent_span_id for s in spans], _STRING),
        _pa.array([s.name for s in spans], _STRING),
        _pa.array([s.kind for s in spans], _STRING),
        _pa.array([s.start_ns for s in spans], _INT64),
        _pa.array([s.end_ns for s in spans], _INT64),
        _pa.array([s.status_code for s in spans], _STRING),
        _pa.array([s.status_message for s in spans], _STRING),
        _pa.array(operations, _STRING),
        _pa.array(run_ids, _STRING),
        _pa.array([s.service_name for s in spans], _STRING),
        _pa.array([s.scope_name for s in spans], _STRING),
        _pa.array(attributes, _STRING),
        _pa.array(events, _STRING),
        _pa.array(resource, _STRING),
        _pa.array(models, _STRING),
        _pa.array(inputs, _INT64),
        _pa.array(outputs, _INT64),
        _pa.array(costs, _FLOAT64),
    ]
    return _pa.Table.from_arrays(arrays, schema=SPAN_SCHEMA)
