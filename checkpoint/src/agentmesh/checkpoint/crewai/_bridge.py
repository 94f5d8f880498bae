"""Synchronous (and thread-safe) access to a checkpoint store: :class:`StoreBridge`.

CrewAI calls its persistence synchronously, from whatever thread runs the flow method or the
task, while our stores are async and usable by the one event loop they were opened in. The
bridge owns that loop: a private daemon thread running an event loop, on which the store is
opened (on first use) and every call runs; callers block on the result. Async callers (CrewAI's
native async task path) await the same calls without blocking their own loop.

A synchronous twin store (``SyncRedisCheckpointStore``, ``SyncDuckDBCheckpointStore``: the
same methods, not coroutines) needs no loop: the bridge calls it directly, under a lock.

Every failure reaches the caller as :class:`~agentmesh.core.CheckpointError` naming the backend,
the thread and the cause.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from agentmesh.checkpoint._loop import LoopThread
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, ListQuery, StoredCheckpoint
from agentmesh.core.errors import CheckpointError
from agentmesh.core.log import get_logger

__all__ = ["StoreBridge"]

_log = get_logger(__name__)

_T = TypeVar("_T")

_CLOSE_TIMEOUT = 10.0
"""Seconds :meth:`StoreBridge.close` waits for the store to close and the thread to end."""


def _is_async_store(store: object) -> bool:
    """Whether the store's methods are coroutines (an async store) or plain calls (a twin)."""
    return inspect.iscoroutinefunction(getattr(store, "put", None))


def _backend(store: object) -> str:
    name = getattr(store, "name", None)
    return name if isinstance(name, str) and name else type(store).__name__


class StoreBridge:
    """Run a checkpoint store's calls synchronously from any thread (or awaited from any loop).

    The store is opened on first use (``async with`` on the bridge's own loop, or ``with`` for
    a synchronous twin) and closed by :meth:`close`. Give it a store that is not open yet: a
    store belongs to the event loop it was opened in.

    Args:
        store: An async :class:`~agentmesh.checkpoint.store.base.CheckpointStore`, or a
            synchronous twin with the same methods.
        thread_name: Name of the loop thread (for debugging).
    """

    def __init__(self, store: object, *, thread_name: str = "agentmesh-checkpoint") -> None:
        self._store = store
        self._async = _is_async_store(store)
        self._thread_name = thread_name
        self._lock = threading.Lock()
        self._sync_lock = threading.RLock()
        self._loop: LoopThread | None = None
        self._opened = False
        self._closed = False

    @property
    def store(self) -> object:
        """The store the bridge drives."""
        return self._store

    @property
    def backend(self) -> str:
        """The store's backend name (``memory``, ``duckdb``, ``redis``, ``postgres``…)."""
        return _backend(self._store)

    # -- lifecycle ---------------------------------------------------------------------------

    def _ensure_open(self) -> LoopThread | None:
        with self._lock:
            if self._closed:
                raise CheckpointError(
                    f"{self.backend} checkpoint store: the CrewAI persistence was closed"
                )
            if self._opened:
                return self._loop
            if not self._async:
                enter = getattr(self._store, "__enter__", None)
                if callable(enter):
                    self._translate(lambda: enter(), "open", None)
                self._opened = True
                return None
            loop = LoopThread(self._thread_name)
            loop.start()
            enter_async = cast(Callable[[], Awaitable[object]], self._store.__aenter__)  # type: ignore[attr-defined]
            try:
                loop.submit(lambda: enter_async()).result()
            except CheckpointError:
                loop.stop(_CLOSE_TIMEOUT)
                raise
            except Exception as exc:
                loop.stop(_CLOSE_TIMEOUT)
                raise CheckpointError(
                    f"{self.backend} checkpoint store: cannot open it: {exc}"
                ) from exc
            self._loop = loop
            self._opened = True
            return loop

    def open(self) -> None:
        """Open the store now rather than on first use (idempotent).

        Raises:
            CheckpointError: The store cannot be opened, or the bridge was closed.
        """
        self._ensure_open()

    def close(self) -> None:
        """Close the store (if the bridge opened it) and end the loop thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            opened, loop = self._opened, self._loop
            self._loop = None
        if not opened:
            return
        try:
            if loop is None:
                exit_ = getattr(self._store, "__exit__", None)
                if callable(exit_):
                    exit_(None, None, None)
                return
            exit_async = cast(
                Callable[..., Awaitable[object]],
                self._store.__aexit__,  # type: ignore[attr-defined]
            )
            loop.submit(lambda: exit_async(None, None, None)).result(_CLOSE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - closing is best effort, and logged
            _log.warning("checkpoint_bridge_close_failed", backend=self.backend, error=str(exc))
        finally:
            if loop is not None:
                loop.stop(_CLOSE_TIMEOUT)

    # -- calls -------------------------------------------------------------------------------

    def _translate(self, call: Callable[[], _T], what: str, thread_id: str | None) -> _T:
        try:
            return call()
        except CheckpointError:
            raise
        except Exception as exc:
            where = f" thread {thread_id!r}" if thread_id is not None else ""
            raise CheckpointError(
                f"{self.backend} checkpoint store: cannot {what}{where}: {exc}"
            ) from exc

    def _run(
        self,
        coro_factory: Callable[[Any], Awaitable[_T]],
        sync_call: Callable[[Any], _T],
        what: str,
        thread_id: str | None,
    ) -> _T:
        loop = self._ensure_open()
        if loop is None:

            def direct() -> _T:
                with self._sync_lock:
                    return sync_call(self._store)

            return self._translate(direct, what, thread_id)
        if threading.current_thread() is loop.thread:
            raise CheckpointError(
                f"{self.backend} checkpoint store: a synchronous call to {what} from the "
                "bridge's own event loop would deadlock"
            )
        return self._translate(
            lambda: loop.submit(lambda: coro_factory(self._store)).result(), what, thread_id
        )

    async def _arun(
        self,
        coro_factory: Callable[[Any], Awaitable[_T]],
        sync_call: Callable[[Any], _T],
        what: str,
        thread_id: str | None,
    ) -> _T:
        loop = await asyncio.to_thread(self._ensure_open)
        if loop is None:

            def direct() -> _T:
                with self._sync_lock:
                    return self._translate(lambda: sync_call(self._store), what, thread_id)

            return await asyncio.to_thread(direct)
        future = loop.submit(lambda: coro_factory(self._store))
        try:
            return await asyncio.wrap_future(future)
        except CheckpointError:
            raise
        except Exception as exc:
            where = f" thread {thread_id!r}" if thread_id is not None else ""
            raise CheckpointError(
                f"{self.backend} checkpoint store: cannot {what}{where}: {exc}"
            ) from exc

    def put(self, record: CheckpointRecord, blobs: Mapping[tuple[str, str], Blob]) -> None:
        """Store a checkpoint (unconditionally; puts are idempotent).

        Args:
            record: The checkpoint.
            blobs: New channel values by ``(channel, version)``.

        Raises:
            CheckpointError: The store failed.
        """
        self._run(
            lambda s: s.put(record, blobs),
            lambda s: s.put(record, blobs),
            "store a checkpoint of",
            record.thread_id,
        )

    async def aput(self, record: CheckpointRecord, blobs: Mapping[tuple[str, str], Blob]) -> None:
        """Store a checkpoint, from async code (see :meth:`put`).

        Args:
            record: The checkpoint.
            blobs: New channel values by ``(channel, version)``.

        Raises:
            CheckpointError: The store failed.
        """
        await self._arun(
            lambda s: s.put(record, blobs),
            lambda s: s.put(record, blobs),
            "store a checkpoint of",
            record.thread_id,
        )

    def get(self, thread_id: str, namespace: str) -> StoredCheckpoint | None:
        """The newest checkpoint of a thread and namespace.

        Args:
            thread_id: The thread.
            namespace: The namespace.

        Returns:
            The checkpoint, or ``None`` when the namespace is empty.

        Raises:
            CheckpointError: The store failed.
        """
        return self._run(
            lambda s: s.get(thread_id, namespace),
            lambda s: s.get(thread_id, namespace),
            "read the newest checkpoint of",
            thread_id,
        )

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint of a thread (all namespaces).

        Args:
            thread_id: The thread.

        Raises:
            CheckpointError: The store failed.
        """
        self._run(
            lambda s: s.delete_thread(thread_id),
            lambda s: s.delete_thread(thread_id),
            "delete",
            thread_id,
        )

    def list(self, query: ListQuery) -> list[StoredCheckpoint]:
        """Every checkpoint matching a query, newest first.

        Args:
            query: The query.

        Returns:
            The checkpoints.

        Raises:
            CheckpointError: The store failed.
        """
        return self._run(
            _collect_async(query),
            lambda s: list(cast(Iterable[StoredCheckpoint], s.list(query))),
            "list the checkpoints of",
            query.thread_id,
        )

    async def alist(self, query: ListQuery) -> list[StoredCheckpoint]:
        """Every checkpoint matching a query, newest first, from async code.

        Args:
            query: The query.

        Returns:
            The checkpoints.

        Raises:
            CheckpointError: The store failed.
        """
        return await self._arun(
            _collect_async(query),
            lambda s: list(cast(Iterable[StoredCheckpoint], s.list(query))),
            "list the checkpoints of",
            query.thread_id,
        )


def _collect_async(query: ListQuery) -> Callable[[Any], Awaitable[list[StoredCheckpoint]]]:
    async def collect(store: Any) -> list[StoredCheckpoint]:
        items = cast(AsyncIterator[StoredCheckpoint], store.list(query))
        return [item async for item in items]

    return collect
