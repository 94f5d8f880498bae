"""Opening a saver and its store for sync or async use: :class:`SaverContext`.

``with Saver.from_conn_string(...) as saver:`` (sync use) starts a private event loop on a
thread the context owns, opens the store there, and on exit closes the store and stops the
thread. ``async with Saver.from_conn_string(...) as saver:`` (async use) opens the store on
the running loop and closes it on exit. Either way the saver's sync twin store, if it opened
one, is closed too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from agentmesh.checkpoint._loop import LoopThread
from agentmesh.checkpoint.langgraph._saver import AgentMeshSaver
from agentmesh.checkpoint.store.base import CheckpointStore
from agentmesh.core.errors import CheckpointError

__all__ = ["SaverContext"]

S = TypeVar("S", bound=AgentMeshSaver)


class SaverContext(Generic[S]):
    """A store and its saver, opened on entry and closed on exit (once).

    Args:
        name: The backend, for thread names and messages.
        make_store: Creates the store (not yet opened).
        make_saver: Builds the saver on the opened store and the loop it runs in.
    """

    def __init__(
        self,
        name: str,
        make_store: Callable[[], CheckpointStore],
        make_saver: Callable[[CheckpointStore, asyncio.AbstractEventLoop], S],
    ) -> None:
        self._name = name
        self._make_store = make_store
        self._make_saver = make_saver
        self._store: CheckpointStore | None = None
        self._saver: S | None = None
        self._loop_thread: LoopThread | None = None
        self._used = False

    def _claim(self) -> None:
        if self._used:
            raise CheckpointError(
                f"this {self._name} saver context was already entered; call "
                "from_conn_string(...) again for another one"
            )
        self._used = True

    def __enter__(self) -> S:
        """Open the store on a private loop thread; return the saver (sync use)."""
        self._claim()
        loop_thread = LoopThread(f"agentmesh-{self._name}-saver")
        loop_thread.start()
        try:
            store = self._make_store()
            loop_thread.run(store.__aenter__)
            self._store = store
            self._saver = self._make_saver(store, loop_thread.loop)
        except BaseException:
            loop_thread.stop()
            raise
        self._loop_thread = loop_thread
        return self._saver

    def __exit__(self, *exc_info: object) -> None:
        """Close the sync twin and the store, stop the loop thread."""
        loop_thread, store, saver = self._loop_thread, self._store, self._saver
        self._loop_thread = self._store = self._saver = None
        try:
            if saver is not None:
                saver.close_sync_store()
            if loop_thread is not None and store is not None:
                loop_thread.run(lambda: store.__aexit__(None, None, None))
        finally:
            if loop_thread is not None:
                loop_thread.stop()

    async def __aenter__(self) -> S:
        """Open the store on the running loop; return the saver (async use)."""
        self._claim()
        store = self._make_store()
        await store.__aenter__()
        self._store = store
        try:
            self._saver = self._make_saver(store, asyncio.get_running_loop())
        except BaseException:
            await store.__aexit__(None, None, None)
            raise
        return self._saver

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the sync twin and the store."""
        store, saver = self._store, self._saver
        self._store = self._saver = None
        try:
            if saver is not None:
                saver.close_sync_store()
        finally:
            if store is not None:
                await store.__aexit__(None, None, None)
