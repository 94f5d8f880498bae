"""Duck-typed readers of SDK objects and the attributes every provider span starts with.

Provider-agnostic (the Anthropic instrumentation uses them too); nothing here imports an SDK.

Example:
    >>> class Usage:
    ...     prompt_tokens = 12
    >>> int_attr(Usage(), "prompt_tokens"), int_attr(Usage(), "missing")
    (12, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

from opentelemetry.util.types import AttributeValue

from agentmesh.core.semconv import (
    AGENTMESH_RUN_ID,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROVIDER_NAME,
    GEN_AI_REQUEST_MODEL,
    SERVER_ADDRESS,
    SERVER_PORT,
)
from agentmesh.instrumentation.openai._pricing import UNKNOWN_MODEL
from agentmesh.instrumentation.run_context import current_run_id

__all__ = [
    "attr",
    "base_attributes",
    "base_template",
    "copy_numbers",
    "int_attr",
    "integer",
    "items",
    "mapping_get",
    "model_name",
    "number",
    "server",
    "span_name",
    "str_attr",
    "with_current_run_id",
]

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_MAX_SERVERS: Final = 256
_servers: dict[int, tuple[object, str | None, int | None]] = {}
_MAX_TEMPLATES: Final = 1024
_templates: dict[tuple[str, str, str, str | None, int | None], dict[str, AttributeValue]] = {}
_span_names: dict[tuple[str, str], str] = {}


def attr(obj: object, name: str) -> object:
    """Return ``obj.name`` (``obj[name]`` for a dict), or ``None`` when it has no such attribute.

    SDK responses are pydantic models, whose ``getattr`` of a missing name costs an exception
    (microseconds): their fields are read from ``__dict__`` instead. A field newer than the
    SDK (``prompt_tokens_details`` on openai 1.40, say) is one of the model's extras, a plain
    dict: it is read from there.
    """
    if obj is None:
        return None
    values: object = getattr(obj, "__dict__", None)
    if isinstance(values, dict) and name in values:
        return cast("dict[str, object]", values)[name]
    if hasattr(type(obj), "__pydantic_fields__"):  # a pydantic model without that field
        extra: object = getattr(obj, "__pydantic_extra__", None)
        return cast("dict[str, object]", extra).get(name) if isinstance(extra, dict) else None
    if isinstance(obj, dict):
        return cast("dict[str, object]", obj).get(name)
    return getattr(obj, name, None)


def str_attr(obj: object, name: str) -> str | None:
    """Return ``obj.name`` when it is a string."""
    value = attr(obj, name)
    return value if isinstance(value, str) else None


def int_attr(obj: object, name: str) -> int | None:
    """Return ``obj.name`` when it is an integer (not a bool)."""
    value = attr(obj, name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def integer(value: object) -> int | None:
    """Return ``value`` when it is an integer (not a bool)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(value: object) -> float | None:
    """Return ``value`` as a float when it is a number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def copy_numbers(
    attributes: dict[str, AttributeValue],
    kwargs: Mapping[str, object],
    names: tuple[tuple[str, str], ...],
) -> None:
    """Set each ``(attribute, argument)`` of ``names`` whose argument is a number (not a bool).

    Args:
        attributes: The span attributes to add to.
        kwargs: The SDK call's keyword arguments.
        names: Attribute key and argument name pairs (``GEN_AI_REQUEST_TEMPERATURE``, …).
    """
    for key, name in names:
        value = number(kwargs.get(name))
        if value is not None:
            attributes[key] = value


def items(value: object) -> list[object] | tuple[object, ...]:
    """Return ``value`` when it is a list or tuple, else an empty tuple."""
    if isinstance(value, list | tuple):
        return cast("list[object] | tuple[object, ...]", value)
    return ()


def mapping_get(obj: object, key: str) -> object:
    """Read ``key`` from a mapping or an attribute of an object."""
    if isinstance(obj, Mapping):
        return cast("Mapping[str, object]", obj).get(key)
    return getattr(obj, key, None)


def model_name(kwargs: Mapping[str, object]) -> str:
    """Return the requested model, or ``"unknown"``."""
    model = kwargs.get("model")
    return model if isinstance(model, str) and model else UNKNOWN_MODEL


def server(instance: object) -> tuple[str | None, int | None]:
    """Return the host and port of the client an SDK resource belongs to.

    Cached per base URL object (clients keep theirs), so the URL is parsed once.

    Args:
        instance: The resource (its ``_client.base_url`` is read).

    Returns:
        Host and port, each ``None`` when unknown.
    """
    url = getattr(getattr(instance, "_client", None), "base_url", None)
    key = id(url)
    cached = _servers.get(key)
    if cached is not None and cached[0] is url:
        return cached[1], cached[2]
    host = str_attr(url, "host")
    port = int_attr(url, "port")
    if port is None:
        port = _DEFAULT_PORTS.get(str_attr(url, "scheme") or "")
    if len(_servers) >= _MAX_SERVERS:
        _servers.clear()
    _servers[key] = (url, host, port)
    return host, port


def base_attributes(
    operation: str, provider: str, model: str, host: str | None, port: int | None
) -> dict[str, AttributeValue]:
    """Return the attributes every provider span starts with.

    Args:
        operation: ``gen_ai.operation.name``.
        provider: ``gen_ai.provider.name``.
        model: The requested model.
        host: ``server.address``, when known.
        port: ``server.port``, when known.

    Returns:
        A new dict the caller may extend (a copy of one built once per distinct argument set).
    """
    return with_current_run_id(base_template(operation, provider, model, host, port))


def with_current_run_id(template: Mapping[str, AttributeValue]) -> dict[str, AttributeValue]:
    """Return a copy of ``template`` with the run id from baggage, when there is one.

    Args:
        template: Shared start attributes (not modified).

    Returns:
        A new dict the caller may extend.
    """
    attributes = dict(template)
    run_id = current_run_id()
    if run_id is not None:
        attributes[AGENTMESH_RUN_ID] = run_id
    return attributes


def base_template(
    operation: str, provider: str, model: str, host: str | None, port: int | None
) -> Mapping[str, AttributeValue]:
    """Return the attributes :func:`base_attributes` starts from, without the run id.

    Args:
        operation: ``gen_ai.operation.name``.
        provider: ``gen_ai.provider.name``.
        model: The requested model.
        host: ``server.address``, when known.
        port: ``server.port``, when known.

    Returns:
        A shared dict, built once per distinct argument set: copy it before changing it.
    """
    key = (operation, provider, model, host, port)
    template = _templates.get(key)
    if template is None:
        built: dict[str, AttributeValue] = {
            GEN_AI_OPERATION_NAME: operation,
            GEN_AI_PROVIDER_NAME: provider,
            GEN_AI_REQUEST_MODEL: model,
        }
        if host:
            built[SERVER_ADDRESS] = host
        if port is not None:
            built[SERVER_PORT] = port
        if len(_templates) >= _MAX_TEMPLATES:
            _templates.clear()
        _templates[key] = template = built
    return template


def span_name(operation: str, model: str) -> str:
    """Return ``{operation} {model}``, the name of a provider span (built once per pair).

    Args:
        operation: ``gen_ai.operation.name``.
        model: The requested model.

    Returns:
        The span name.
    """
    key = (operation, model)
    name = _span_names.get(key)
    if name is None:
        name = f"{operation} {model}"
        if len(_span_names) >= _MAX_TEMPLATES:
            _span_names.clear()
        _span_names[key] = name
    return name
