"""Testing helpers shipped with AgentMesh instrumentation.

:mod:`agentmesh.instrumentation.testing.fake_provider` serves a fake LLM provider (OpenAI and
Anthropic wire formats, OpenRouter model names) on loopback, for offline tests; its public
names are re-exported here.
"""

from agentmesh.instrumentation.testing.fake_provider import (
    DEFAULT_CONTENT_TEMPLATE,
    DEFAULT_SCRIPT_KEY,
    ErrorScript,
    FakeProvider,
    FakeProviderControls,
    FakeProviderThread,
    FinishReason,
    ModelScript,
    RecordedRequest,
    ResponseRule,
    ScriptedReply,
    ToolCallScript,
    estimate_tokens,
    load_scripts,
    parse_scripts,
)

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
