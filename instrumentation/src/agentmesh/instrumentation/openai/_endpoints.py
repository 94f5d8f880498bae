"""The instrumented ``openai`` methods: chat completions, Responses, embeddings.

Imported only when a patch is applied: importing this module imports ``openai``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import openai
from openai import _legacy_response  # pyright: ignore[reportPrivateUsage]

from agentmesh.instrumentation.openai import _attributes
from agentmesh.instrumentation.openai._call import CallRequest, Summary
from agentmesh.instrumentation.openai._embeddings import EmbeddingsSummary, read_embeddings_request
from agentmesh.instrumentation.openai._responses import ResponsesSummary, read_responses_request
from agentmesh.instrumentation.openai._wrappers import Endpoint

__all__ = ["CHAT", "EMBEDDINGS", "RESPONSES"]

_RAW: Final[tuple[type, ...]] = (_legacy_response.LegacyAPIResponse,)


def _read_chat(instance: object, kwargs: Mapping[str, object], capture: bool) -> CallRequest:
    return _attributes.read_request(instance, kwargs, capture)


def _chat_summary(capture: bool) -> Summary:
    return _attributes.ResponseSummary(capture=capture)


def _responses_summary(capture: bool) -> Summary:
    return ResponsesSummary(capture=capture)


def _embeddings_summary(capture: bool) -> Summary:
    del capture
    return EmbeddingsSummary()


CHAT: Final = Endpoint(
    "openai.chat", _read_chat, _chat_summary, openai.Stream, openai.AsyncStream, _RAW
)
"""``chat.completions.create`` / ``parse`` (and through them the ``stream`` helper)."""

RESPONSES: Final = Endpoint(
    "openai.responses",
    read_responses_request,
    _responses_summary,
    openai.Stream,
    openai.AsyncStream,
    _RAW,
)
"""``responses.create`` / ``parse`` (and through them the ``stream`` helper)."""

EMBEDDINGS: Final = Endpoint(
    "openai.embeddings",
    read_embeddings_request,
    _embeddings_summary,
    openai.Stream,
    openai.AsyncStream,
    _RAW,
)
"""``embeddings.create``."""
