"""The fake provider's mutable state: scripts, per-model call counters and recorded requests.

Every method is thread-safe: with :class:`FakeProviderThread` the server reads the state on its
own thread while tests change scripts and inspect requests on theirs.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentmesh.instrumentation.testing.fake_provider.jsontypes import JSONObject
from agentmesh.instrumentation.testing.fake_provider.script import (
    DEFAULT_SCRIPT_KEY,
    ErrorScript,
    ModelScript,
    ToolCallScript,
)
from agentmesh.instrumentation.testing.fake_provider.tokens import estimate_tokens

__all__ = ["ProviderState", "RecordedRequest", "ReplyPlan"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake provider received.

    Attributes:
        method: The HTTP method.
        route: The path, for example ``/v1/chat/completions``.
        model: The requested model, when the body named one.
        stream: Whether the body asked for a streamed response.
        body: The decoded JSON body; ``None`` when there was none or it was invalid.
        headers: The request headers (names lowercase).
        time: When it arrived (``time.time()``).
    """

    method: str
    route: str
    model: str | None
    stream: bool
    body: JSONObject | None
    headers: Mapping[str, str] = field(default_factory=dict[str, str])
    time: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class ReplyPlan:
    """Everything a route needs to answer one call, resolved from the model's script.

    Attributes:
        model: The requested model.
        call_index: 0-based index of this call among the model's calls.
        content: Reply text; ``None`` for none (tool calls only, or an error).
        tool_calls: Tool calls of the reply.
        error: The error to answer with, if this call fails.
        hang: Never answer.
        latency: Seconds to wait before answering.
        chunk_delay: Seconds between streamed chunks.
        chunk_size: Characters per streamed text chunk (``None``: word by word).
        input_tokens: Prompt tokens (cached included).
        output_tokens: Completion tokens (reasoning included).
        cached_tokens: Prompt tokens read from cache.
        cache_creation_tokens: Prompt tokens written to cache.
        reasoning_tokens: Reasoning tokens.
        finish_reason: ``stop``, ``length``, ``content_filter`` or ``tool_calls``.
    """

    model: str
    call_index: int
    content: str | None
    tool_calls: tuple[ToolCallScript, ...]
    error: ErrorScript | None
    hang: bool
    latency: float
    chunk_delay: float
    chunk_size: int | None
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cache_creation_tokens: int
    reasoning_tokens: int
    finish_reason: str


class ProviderState:
    """Scripts by model, call counters and the record of received requests."""

    def __init__(
        self,
        scripts: Mapping[str, ModelScript] | None = None,
        default_script: ModelScript | None = None,
    ) -> None:
        """Create the state.

        Args:
            scripts: Model name to script; the key ``"*"`` sets the default script.
            default_script: Script of models without one (overrides a ``"*"`` entry).
        """
        self._lock = threading.Lock()
        self._scripts: dict[str, ModelScript] = dict(scripts or {})
        fallback = self._scripts.pop(DEFAULT_SCRIPT_KEY, None)
        self._default: ModelScript = default_script or fallback or ModelScript()
        self._calls: dict[str, int] = {}
        self._sequence_positions: dict[str, int] = {}
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)

    @property
    def scripts(self) -> dict[str, ModelScript]:
        """A copy of the scripts by model (without the default script)."""
        with self._lock:
            return dict(self._scripts)

    @property
    def default_script(self) -> ModelScript:
        """The script of models without one."""
        with self._lock:
            return self._default

    def set_script(self, model: str, script: ModelScript | None) -> None:
        """Replace (or, with ``None``, remove) a model's script and reset its call counters.

        Args:
            model: The model name; ``"*"`` replaces the default script (``None`` restores the
                built-in default) and resets the counters of every model without a script.
            script: The new script, or ``None``.
        """
        with self._lock:
            if model == DEFAULT_SCRIPT_KEY:
                self._default = script or ModelScript()
                for name in [name for name in self._calls if name not in self._scripts]:
                    self._forget_counters(name)
                return
            if script is None:
                self._scripts.pop(model, None)
            else:
                self._scripts[model] = script
            self._forget_counters(model)

    def script_for(self, model: str) -> ModelScript:
        """Return the script that answers a model.

        Args:
            model: The model name.

        Returns:
            Its script, or the default script.
        """
        with self._lock:
            return self._scripts.get(model, self._default)

    def record(self, request: RecordedRequest) -> None:
        """Append a received request to the record.

        Args:
            request: The request.
        """
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the recorded requests, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        """Forget recorded requests and every call counter (scripts stay)."""
        with self._lock:
            self._requests.clear()
            self._calls.clear()
            self._sequence_positions.clear()

    def known_models(self) -> list[str]:
        """Return the scripted models and the models requested so far, sorted.

        Returns:
            Model names.
        """
        with self._lock:
            names = set(self._scripts)
            names.update(record.model for record in self._requests if record.model)
            names.update(self._calls)
        return sorted(names)

    def next_id(self) -> int:
        """Return the next number for response, message and tool-call ids.

        Returns:
            A number unique within this state, starting at 1.
        """
        with self._lock:
            return next(self._ids)

    def plan(self, model: str, *, prompt: str, last_message: str) -> ReplyPlan:
        """Count a call of ``model`` and resolve how to answer it.

        Args:
            model: The requested model.
            prompt: The text of the whole prompt (for the input-token estimate).
            last_message: The text of the last message (for scripted rules).

        Returns:
            The plan for this call.
        """
        with self._lock:
            script = self._scripts.get(model, self._default)
            call_index = self._calls.get(model, 0)
            self._calls[model] = call_index + 1
            error = script.error if script.error and script.error.applies_to(call_index) else None
            content: str | None = None
            tool_calls: tuple[ToolCallScript, ...] = ()
            if error is None and not script.hang:
                position = self._sequence_positions.get(model, 0)
                selection = script.select_reply(model, last_message, position)
                if selection.from_sequence:
                    self._sequence_positions[model] = position + 1
                content = selection.reply.content
                tool_calls = selection.reply.tool_calls
        output_text = "\n".join(
            [content or "", *(f"{call.name}{call.arguments}" for call in tool_calls)]
        )
        return ReplyPlan(
            model=model,
            call_index=call_index,
            content=content,
            tool_calls=tool_calls,
            error=error,
            hang=script.hang,
            latency=script.latency,
            chunk_delay=script.chunk_delay,
            chunk_size=script.chunk_size,
            input_tokens=(
                script.input_tokens if script.input_tokens is not None else estimate_tokens(prompt)
            ),
            output_tokens=(
                script.output_tokens
                if script.output_tokens is not None
                else estimate_tokens(output_text) + script.reasoning_tokens
            ),
            cached_tokens=script.cached_tokens,
            cache_creation_tokens=script.cache_creation_tokens,
            reasoning_tokens=script.reasoning_tokens,
            finish_reason="tool_calls" if tool_calls else script.finish_reason,
        )

    def _forget_counters(self, model: str) -> None:
        self._calls.pop(model, None)
        self._sequence_positions.pop(model, None)
