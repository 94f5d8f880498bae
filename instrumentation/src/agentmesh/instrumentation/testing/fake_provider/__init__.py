"""A fake LLM provider: a real HTTP server on loopback speaking OpenAI's and Anthropic's APIs.

Point the real ``openai`` and ``anthropic`` SDKs (or anything else speaking their wire formats,
OpenRouter model names included) at it to test offline, deterministically, and to inject
latency, rate limits, server errors and hangs::

    async with FakeProvider({"gpt-4o-mini": ModelScript(content="Hello!")}) as fp:
        client = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="fake")
        ...

From synchronous code use :class:`FakeProviderThread` (same API, a background thread); from a
shell, ``agentmesh-fake-provider --port 8765 --scripts scripts.json``.
"""

from agentmesh.instrumentation.testing.fake_provider.controls import FakeProviderControls
from agentmesh.instrumentation.testing.fake_provider.script import (
    DEFAULT_CONTENT_TEMPLATE,
    DEFAULT_SCRIPT_KEY,
    ErrorScript,
    FinishReason,
    ModelScript,
    ResponseRule,
    ScriptedReply,
    ToolCallScript,
    load_scripts,
    parse_scripts,
)
from agentmesh.instrumentation.testing.fake_provider.server import FakeProvider
from agentmesh.instrumentation.testing.fake_provider.state import RecordedRequest
from agentmesh.instrumentation.testing.fake_provider.thread import FakeProviderThread
from agentmesh.instrumentation.testing.fake_provider.tokens import estimate_tokens

__all__ = [
    "DEFAULT_CONTENT_TEMPLATE",
    "DEFAULT_SCRIPT_KEY",
    "ErrorScript",
    "FakeProvider",
    "FakeProviderControls",
    "FakeProviderThread",
    "FinishReason",
    "ModelScript",
    "RecordedRequest",
    "ResponseRule",
    "ScriptedReply",
    "ToolCallScript",
    "estimate_tokens",
    "load_scripts",
    "parse_scripts",
]
