"""The fake provider server: an aiohttp application on loopback, run from async code."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web

from agentmesh.core.errors import ProviderError
from agentmesh.core.log import get_logger
from agentmesh.instrumentation.testing.fake_provider.anthropic_routes import AnthropicRoutes
from agentmesh.instrumentation.testing.fake_provider.catalog import ModelCatalog
from agentmesh.instrumentation.testing.fake_provider.controls import FakeProviderControls
from agentmesh.instrumentation.testing.fake_provider.handling import InFlight
from agentmesh.instrumentation.testing.fake_provider.openai_routes import OpenAIRoutes
from agentmesh.instrumentation.testing.fake_provider.script import ModelScript, load_scripts
from agentmesh.instrumentation.testing.fake_provider.state import ProviderState

__all__ = ["FakeProvider"]

logger = get_logger(__name__)

_SHUTDOWN_TIMEOUT = 1.0


class FakeProvider(FakeProviderControls):
    """A fake LLM provider speaking the OpenAI and Anthropic wire formats over real HTTP.

    Example:
        >>> import asyncio, openai
        >>> async def ask() -> str | None:
        ...     async with FakeProvider({"gpt-4o": ModelScript(content="Hi")}) as fp:
        ...         client = openai.AsyncOpenAI(base_url=fp.openai_base_url, api_key="x")
        ...         reply = await client.chat.completions.create(
        ...             model="gpt-4o", messages=[{"role": "user", "content": "Hello?"}]
        ...         )
        ...         await client.close()
        ...         return reply.choices[0].message.content
        >>> asyncio.run(ask())
        'Hi'
    """

    def __init__(
        self,
        scripts: Mapping[str, ModelScript] | None = None,
        *,
        default_script: ModelScript | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Create a stopped server.

        Args:
            scripts: Model name to script; the key ``"*"`` sets the default script.
            default_script: Script of models without one (default: ``ModelScript()``, which
                answers ``"Fake reply from {model}."``).
            host: Address to bind.
            port: Port to bind; 0 picks a free one.
        """
        self._state = ProviderState(scripts, default_script)
        self._host = host
        self._requested_port = port
        self._bound_port: int | None = None
        self._inflight = InFlight()
        self._runner: web.AppRunner | None = None

    @classmethod
    def from_json_file(
        cls, path: str | Path, *, host: str = "127.0.0.1", port: int = 0
    ) -> FakeProvider:
        """Create a server whose scripts come from a JSON file (see ``load_scripts``).

        Args:
            path: The JSON file mapping model name to script.
            host: Address to bind.
            port: Port to bind; 0 picks a free one.

        Returns:
            The stopped server.

        Raises:
            ProviderError: The file is unreadable or a script is invalid.
        """
        return cls(load_scripts(path), host=host, port=port)

    @property
    def state(self) -> ProviderState:
        """The scripts, call counters and recorded requests."""
        return self._state

    @property
    def host(self) -> str:
        """The address the server binds."""
        return self._host

    @property
    def port(self) -> int:
        """The port the server listens on.

        Raises:
            ProviderError: The server was asked for a free port (0) and is not running.
        """
        if self._bound_port is not None:
            return self._bound_port
        if self._requested_port:
            return self._requested_port
        raise ProviderError("the fake provider is not running: its port is not chosen yet")

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    def create_app(self) -> web.Application:
        """Build the aiohttp application (routes and middleware) over this server's state.

        Returns:
            A new application; :meth:`start` serves one, tests may mount one elsewhere.
        """
        app = web.Application(middlewares=[self._inflight.middleware()])
        OpenAIRoutes(self._state, self._inflight).register(app)
        AnthropicRoutes(self._state, self._inflight).register(app)
        ModelCatalog(self._state).register(app)
        return app

    async def start(self) -> None:
        """Start listening (does nothing when already running).

        Raises:
            OSError: The address cannot be bound.
        """
        if self._runner is not None:
            return
        self._inflight.reopen()
        runner = web.AppRunner(
            self.create_app(),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=_SHUTDOWN_TIMEOUT,
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        address: tuple[object, ...] = tuple(runner.addresses[0])
        port = address[1]
        self._bound_port = port if isinstance(port, int) else self._requested_port
        self._runner = runner
        logger.info("fake_provider.started", url=self.url)

    async def stop(self) -> None:
        """Stop listening: cancel requests in progress (hung ones too) and close connections."""
        runner = self._runner
        if runner is None:
            return
        self._runner = None
        cancelled = self._inflight.cancel_all()
        await runner.cleanup()
        logger.info("fake_provider.stopped", url=self.url, cancelled_requests=cancelled)
        self._bound_port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
