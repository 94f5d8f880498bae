"""Why a request body did not parse, in plain words: :func:`protobuf_problem`, :func:`json_problem`.

The parsers' own messages name their internals (``Exceeded upb_DecodeOptions_MaxDepth``) or
repeat one clause per nesting level (``Failed to parse values field:`` forty times before the
cause, cut off by the answer's length). These helpers keep the cause, say where it is, and
name what the sender can do.

Example:
    >>> json_problem(
    ...     "Failed to parse resourceSpans field: Failed to parse spans field: "
    ...     "Failed to parse kind field: Invalid enum value weird.."
    ... )
    'at resourceSpans.spans.kind: Invalid enum value weird'
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["json_problem", "protobuf_problem"]

_DEPTH_HINT: Final = (
    "values are nested too deeply for the decoder (100 levels of messages: an attribute value "
    "of about 45 nested arrays or maps); flatten or stringify that value"
)
_PROTOBUF_CAUSES: Final = (
    ("MaxDepth", _DEPTH_HINT),
    (
        "bad UTF-8",
        "a string field holds bytes that are not UTF-8 (OTLP strings must be UTF-8; send binary "
        "data as bytes_value)",
    ),
    (
        "Wire format was corrupt",
        "the bytes are not OTLP protobuf, or were cut short (JSON sent as protobuf? a gzip body "
        "without Content-Encoding: gzip?)",
    ),
)
_JSON_STEP: Final = re.compile(r"Failed to parse (\w+) field: ")


def protobuf_problem(reason: str) -> str:
    """Say why protobuf bytes did not parse.

    Args:
        reason: The parser's message.

    Returns:
        The cause in plain words, or the parser's message when it names none known.
    """
    for marker, words in _PROTOBUF_CAUSES:
        if marker in reason:
            return words
    return reason


def json_problem(reason: str) -> str:
    """Say where and why an OTLP/JSON document did not map onto the protobuf messages.

    Args:
        reason: ``json_format``'s message: one ``Failed to parse X field:`` per level.

    Returns:
        ``at a.b.c: cause``, with repeated levels counted (``values x40``).
    """
    path: list[str] = []
    rest = reason
    while (step := _JSON_STEP.match(rest)) is not None:
        path.append(step.group(1))
        rest = rest[step.end() :]
    cause = rest.rstrip(".") or "not an OTLP trace export"
    if "too deep" in cause:
        cause = _DEPTH_HINT
    if not path:
        return cause
    return f"at {'.'.join(_counted(path))}: {cause}"


def _counted(path: list[str]) -> list[str]:
    counted: list[str] = []
    index = 0
    while index < len(path):
        run = index
        while run + 1 < len(path) and path[run + 1] == path[index]:
            run += 1
        repeats = run - index + 1
        counted.append(f"{path[index]} x{repeats}" if repeats > 1 else path[index])
        index = run + 1
    return counted
