"""Calling an async checkpoint store from other threads and loops.

A store is usable by the one event loop it was opened in. The savers reach it from:

* that loop (async methods): the coroutine is awaited directly;
* another loop (async methods called elsewhere): the coroutine runs on the store's loop
  (:func:`asyncio.run_coroutine_threadsafe`) and the caller awaits the result;
* a thread without that loop (sync methods, e.g. LangGraph's ``invoke``): the thread waits for
  the coroutine run on the store's loop. From inside the store's loop that would block the very
  loop that has to run it, so it is refused with a :class:`~agentmesh.core.CheckpointError`.

:class:`LoopThread` is the private loop a saver (or the CrewAI persistence) opened for
synchronous use runs its store on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from agentmesh.core.errors import CheckpointError
from agentmesh.core.log import get_logger

__all__ = [
    "CHUNK",
    "LoopThread",
    "call_async",
    "call_sync",
    "iterate_async",
    "iterate_sync",
    "next_chunk",
    "running_loop",
]

_log = get_logger(__name__)

T = TypeVar("T")

CHUNK = 64
"""Items a bridged listing fetches per hop to the store's loop."""


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _check_usable(loop: asyncio.AbstractEventLoop, what: str) -> None:
    """Refuse a blocking call from the store's own loop, or to a loop that no longer runs."""
    if running_loop() is loop:
        raise CheckpointError(
            f"{what} was called from inside the event loop its checkpoint store runs in; a "
            "synchronous call there would block that loop forever: use the async methods "
            "(aget_tuple, alist, aput, aput_writes…) inside the event loop, or call the sync "
            "methods from another thread"
        )
    if loop.is_closed() or not loop.is_running():
        raise CheckpointError(
            f"{what}: the event loop the checkpoint store was opened in is not running "
            "(the saver was closed, or its loop ended); open the saver again"
        )


def call_sync(loop: asyncio.AbstractEventLoop, factory: Callable[[], Awaitable[T]], what: str) -> T:
    """Run a store coroutine on the store's loop and wait for it from this thread.

    Args:
        loop: The loop the store was opened in.
        factory: Makes the coroutine (called only once the call is known to be possible).
        what: The caller, for the error message (``"AgentMeshSaver.get_tuple"``).

    Raises:
        CheckpointError: Called from inside ``loop``, or ``loop`` no longer runs.
    """
    _check_usable(loop, what)

    async def _run() -> T:
        return await factory()

    return asyncio.run_coroutine_threadsafe(_run(), loop).result()


async def call_async(
    loop: asyncio.AbstractEventLoop, factory: Callable[[], Awaitable[T]], what: str
) -> T:
    """Await a store coroutine: directly on the store's loop, else run there and wait.

    Raises:
        CheckpointError: The store's loop no longer runs.
    """
    if running_loop() is loop:
        return await factory()
    if loop.is_closed() or not loop.is_running():
        raise CheckpointError(
            f"{what}: the event loop the checkpoint store was opened in is not running "
            "(the saver was closed, or its loop ended); open the saver again"
        )

    async def _run() -> T:
        return await factory()

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_run(), loop))


async def next_chunk(iterator: AsyncIterator[T], count: int) -> tuple[list[T], bool]:
    """Up to ``count`` items of an async iterator, and whether it is exhausted."""
    items: list[T] = []
    try:
        while len(items) < count:
            items.append(await anext(iterator))
    except StopAsyncIteration:
        return items, True
    return items, False


async def _close(iterator: AsyncIterator[Any]) -> None:
    """Close an async iterator that was not exhausted (async generators have ``aclose``)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


def iterate_sync(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], AsyncIterator[T]],
    what: str,
    *,
    chunk: int = CHUNK,
) -> Iterator[T]:
    """Iterate, from this thread, an async iterator that runs on the store's loop.

    Items are fetched ``chunk`` at a time; an iterator left early is closed on its loop.

    Raises:
        CheckpointError: Called from inside ``loop``, or ``loop`` no longer runs.
    """
    _check_usable(loop, what)

    async def _open() -> AsyncIterator[T]:
        return factory()

    iterator = asyncio.run_coroutine_threadsafe(_open(), loop).result()
    done = False
    try:
        while not done:
            taken = asyncio.run_coroutine_threadsafe(next_chunk(iterator, chunk), loop)
            items, done = taken.result()
            yield from items
    finally:
        if not done and not loop.is_closed() and loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(_close(iterator), loop)
            if running_loop() is not loop:  # never wait for the loop from inside it
                closing.result()


async def iterate_async(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], AsyncIterator[T]],
    what: str,
    *,
    chunk: int = CHUNK,
) -> AsyncIterator[T]:
    """Iterate an async iterator of the store: directly on its loop, else chunk by chunk.

    Raises:
        CheckpointError: The store's loop no longer runs.
    """
    if running_loop() is loop:
        async for item in factory():
            yield item
        return
    if loop.is_closed() or not loop.is_running():
        raise CheckpointError(
            f"{what}: the event loop the checkpoint store was opened in is not running "
            "(the saver was closed, or its loop ended); open the saver again"
        )

    async def _open() -> AsyncIterator[T]:
        return factory()

    iterator = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_open(), loop))
    done = False
    try:
        while not done:
            items, done = await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(next_chunk(iterator, chunk), loop)
            )
            for item in items:
                yield item
    finally:
        if not done and not loop.is_closed() and loop.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(_close(iterator), loop))


class LoopThread:
    """A private event loop on a daemon thread, owned by whoever starts it.

    ``start()`` runs the loop; :meth:`run` waits for a coroutine on it from another thread;
    ``stop()`` cancels what is left, shuts down async generators and the default executor,
    closes the loop and joins the thread.

    Args:
        name: The thread's name.

    Example:
        >>> loop_thread = LoopThread("demo")
        >>> loop_thread.start()
        >>> async def answer() -> int:
        ...     return 42
        >>> loop_thread.run(answer)
        42
        >>> loop_thread.stop()
    """

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (running between :meth:`start` and :meth:`stop`)."""
        return self._loop

    @property
    def thread(self) -> threading.Thread:
        """The thread the loop runs on."""
        return self._thread

    def _main(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        loop.call_soon(self._ready.set)
        try:
            loop.run_forever()
        finally:
            try:
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            except Exception as exc:  # noqa: BLE001 - shutting down: log and go on closing
                _log.warning("checkpoint_loop_shutdown_failed", error=repr(exc))
            finally:
                loop.close()

    def start(self) -> None:
        """Start the thread and wait until its loop runs."""
        if self._started:
            raise CheckpointError("checkpoint saver loop thread started twice")
        self._started = True
        self._thread.start()
        self._ready.wait()

    def submit(self, factory: Callable[[], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop; the future completes with its result."""

        async def _run() -> T:
            return await factory()

        return asyncio.run_coroutine_threadsafe(_run(), self._loop)

    def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the loop and wait for its result (not from the loop itself)."""
        return call_sync(self._loop, factory, "checkpoint saver loop thread")

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop, close it and join the thread (idempotent).

        Args:
            timeout: Longest wait for the thread to end (``None``: as long as it takes); a
                thread still running then is logged and left (it is a daemon).
        """
        if not self._started or not self._thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in the meantime
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            _log.warning("checkpoint_loop_thread_still_running", timeout=timeout)
