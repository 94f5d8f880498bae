"""Run the fake provider on an event loop in a background thread, for synchronous code."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from agentmesh.core.errors import ProviderError
from agentmesh.core.log import get_logger
from agentmesh.instrumentation.testing.fake_provider.controls import FakeProviderControls
from agentmesh.instrumentation.testing.fake_provider.script import ModelScript, load_scripts
from agentmesh.instrumentation.testing.fake_provider.server import FakeProvider
from agentmesh.instrumentation.testing.fake_provider.state import ProviderState

__all__ = ["FakeProviderThread"]

logger = get_logger(__name__)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


class FakeProviderThread(FakeProviderControls):
    """A :class:`FakeProvider` served from a daemon thread with its own event loop.

    Example:
        >>> import openai
        >>> with FakeProviderThread({"gpt-4o": ModelScript(content="Hi")}) as fp:
        ...     client = openai.OpenAI(base_url=fp.openai_base_url, api_key="x")
        ...     reply = client.chat.completions.create(
        ...         model="gpt-4o", messages=[{"role": "user", "content": "Hello?"}]
        ...     )
        >>> reply.choices[0].message.content
        'Hi'
    """

    def __init__(
        self,
        scripts: Mapping[str, ModelScript] | None = None,
        *,
        default_script: ModelScript | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 10.0,
    ) -> None:
        """Create a stopped server.

        Args:
            scripts: Model name to script; the key ``"*"`` sets the default script.
            default_script: Script of models without one.
            host: Address to bind.
            port: Port to bind; 0 picks a free one.
            start_timeout: Seconds :meth:`start` waits for the server to listen.
        """
        self._provider = FakeProvider(scripts, default_script=default_script, host=host, port=port)
        self._start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_json_file(
        cls, path: str | Path, *, host: str = "127.0.0.1", port: int = 0
    ) -> FakeProviderThread:
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
    def provider(self) -> FakeProvider:
        """The served :class:`FakeProvider` (its coroutines belong to the thread's loop)."""
        return self._provider

    @property
    def state(self) -> ProviderState:
        """The scripts, call counters and recorded requests."""
        return self._provider.state

    @property
    def host(self) -> str:
        """The address the server binds."""
        return self._provider.host

    @property
    def port(self) -> int:
        """The port the server listens on.

        Raises:
            ProviderError: The server was asked for a free port (0) and is not running.
        """
        return self._provider.port

    @property
    def running(self) -> bool:
        """Whether the server is listening."""
        return self._provider.running

    def start(self) -> None:
        """Start the thread and wait until the server listens (nothing if already running).

        Raises:
            ProviderError: The server did not start within ``start_timeout``.
            OSError: The address cannot be bound.
        """
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=_run_loop, args=(loop,), name="agentmesh-fake-provider", daemon=True
        )
        thread.start()
        self._loop, self._thread = loop, thread
        future = asyncio.run_coroutine_threadsafe(self._provider.start(), loop)
        try:
            future.result(self._start_timeout)
        except TimeoutError:
            future.cancel()
            self._end_loop(self._start_timeout)
            raise ProviderError(
                f"the fake provider did not start within {self._start_timeout}s"
            ) from None
        except BaseException:
            self._end_loop(self._start_timeout)
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (cancelling requests in progress) and end the thread.

        Args:
            timeout: Seconds to wait for the server to stop, then again for the thread.
        """
        loop = self._loop
        if loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._provider.stop(), loop)
        try:
            future.result(timeout)
        except TimeoutError:
            logger.warning("fake_provider.stop_timeout", timeout=timeout)
        finally:
            self._end_loop(timeout)

    def _end_loop(self, timeout: float) -> None:
        loop, thread = self._loop, self._thread
        self._loop, self._thread = None, None
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed already
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("fake_provider.thread_still_running", timeout=timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
