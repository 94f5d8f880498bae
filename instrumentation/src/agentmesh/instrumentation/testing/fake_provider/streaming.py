"""Server-sent events: write a stream of events, and split texts into streamed pieces."""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Mapping

from aiohttp import web

__all__ = ["SSEStream", "split_fixed", "split_in", "split_words"]

_WORD = re.compile(r"\s*\S+\s*")


def split_words(text: str) -> list[str]:
    """Split a text into word-sized pieces that join back to the text.

    Args:
        text: The text.

    Returns:
        The pieces, each a word with its surrounding whitespace (``[]`` for ``""``).

    Example:
        >>> split_words("Fake reply from gpt-4o.")
        ['Fake ', 'reply ', 'from ', 'gpt-4o.']
    """
    pieces = _WORD.findall(text)
    if "".join(pieces) != text:
        return [text] if text else []
    return pieces


def split_fixed(text: str, size: int) -> list[str]:
    """Split a text into pieces of ``size`` characters (the last may be shorter).

    Args:
        text: The text.
        size: Characters per piece (at least 1).

    Returns:
        The pieces (``[]`` for ``""``).
    """
    size = max(1, size)
    return [text[start : start + size] for start in range(0, len(text), size)]


def split_in(text: str, parts: int) -> list[str]:
    """Split a text into about ``parts`` equal pieces.

    Args:
        text: The text.
        parts: How many pieces are wanted.

    Returns:
        The pieces.
    """
    return split_fixed(text, math.ceil(len(text) / max(1, parts)))


class SSEStream:
    """A ``text/event-stream`` response, written one event at a time."""

    def __init__(self, response: web.StreamResponse, delay: float) -> None:
        """Wrap a prepared response.

        Args:
            response: The prepared streaming response.
            delay: Seconds to wait before every event but the first.
        """
        self._response = response
        self._delay = delay
        self._sent = 0

    @classmethod
    async def open(
        cls, request: web.Request, *, delay: float, headers: Mapping[str, str] | None = None
    ) -> SSEStream:
        """Send the response headers and return the stream.

        Args:
            request: The request answered.
            delay: Seconds between events.
            headers: Extra response headers.

        Returns:
            The open stream.
        """
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                **(headers or {}),
            },
        )
        await response.prepare(request)
        return cls(response, delay)

    async def send(self, data: object, *, event: str | None = None) -> None:
        """Write one event.

        Args:
            data: The payload: a string as is, anything else as compact JSON.
            event: The event name (Anthropic names every event; OpenAI none).
        """
        if self._sent and self._delay > 0:
            await asyncio.sleep(self._delay)
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        head = f"event: {event}\n" if event is not None else ""
        await self._response.write(f"{head}data: {payload}\n\n".encode())
        self._sent += 1

    async def finish(self) -> web.StreamResponse:
        """End the response body.

        Returns:
            The response, for the handler to return.
        """
        await self._response.write_eof()
        return self._response

    @property
    def response(self) -> web.StreamResponse:
        """The underlying response."""
        return self._response
