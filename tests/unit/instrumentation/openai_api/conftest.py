"""Fixture of the embeddings and Responses tests: the extended fake provider on a thread."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _api_provider import EMBEDDING_MODEL, RESPONSES_MODEL, ExtendedFakeProvider, ProviderOnThread

from agentmesh.instrumentation.testing import ModelScript


@pytest.fixture
def api_provider() -> Iterator[ExtendedFakeProvider]:
    scripts = {
        EMBEDDING_MODEL: ModelScript(input_tokens=7),
        RESPONSES_MODEL: ModelScript(
            content="Hello from the fake.", cached_tokens=2, reasoning_tokens=1
        ),
    }
    with ProviderOnThread(ExtendedFakeProvider(scripts)) as provider:
        yield provider
