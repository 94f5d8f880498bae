"""What :class:`FakeProvider` and :class:`FakeProviderThread` share: URLs and script control."""

from __future__ import annotations

from abc import ABC, abstractmethod

from agentmesh.instrumentation.testing.fake_provider.script import ModelScript
from agentmesh.instrumentation.testing.fake_provider.state import ProviderState, RecordedRequest

__all__ = ["FakeProviderControls"]


def url_host(host: str) -> str:
    """Return the host as written in a URL that reaches it from this machine.

    Args:
        host: The address the server binds.

    Returns:
        ``127.0.0.1`` for the wildcard addresses, ``[addr]`` for IPv6, else ``host``.
    """
    if host in {"", "0.0.0.0", "::"}:  # noqa: S104 - recognizing, not binding
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class FakeProviderControls(ABC):
    """Base URLs, scripts and the request record of a running fake provider."""

    @property
    @abstractmethod
    def state(self) -> ProviderState:
        """The scripts, call counters and recorded requests."""

    @property
    @abstractmethod
    def host(self) -> str:
        """The address the server binds."""

    @property
    @abstractmethod
    def port(self) -> int:
        """The port the server listens on (the chosen one when started with port 0)."""

    @property
    def url(self) -> str:
        """The server's root URL, for example ``http://127.0.0.1:8765``."""
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` for ``openai.OpenAI`` (and OpenRouter clients): ``{url}/v1``."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` for ``anthropic.Anthropic``: the root (the SDK adds ``/v1``)."""
        return self.url

    @property
    def scripts(self) -> dict[str, ModelScript]:
        """A copy of the scripts by model (without the default script)."""
        return self.state.scripts

    @property
    def default_script(self) -> ModelScript:
        """The script of models without one."""
        return self.state.default_script

    def set_script(self, model: str, script: ModelScript | None) -> None:
        """Replace a model's script (``None`` removes it) and reset its call counters.

        Args:
            model: The model name; ``"*"`` replaces the default script.
            script: The new script, or ``None``.
        """
        self.state.set_script(model, script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, oldest first."""
        return self.state.requests

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self.state.clear_requests()

    def reset(self) -> None:
        """Forget recorded requests and every call counter (scripts stay)."""
        self.state.reset()
