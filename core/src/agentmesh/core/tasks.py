"""Ending the asyncio tasks a service owns: :func:`cancel_and_wait`, :func:`finish_within`.

A service that starts tasks in ``__aenter__`` ends them in ``__aexit__``: cancel each, then
wait until each has really ended (its ``finally`` blocks ran), without letting a task's own
error or cancellation escape into the close. The wait goes through :func:`asyncio.gather`, so
a cancellation of the *closing* task still propagates (``contextlib.suppress(CancelledError)``
around ``await task`` would swallow it).

Example:
    >>> import asyncio
    >>> async def main() -> bool:
    ...     task = asyncio.create_task(asyncio.sleep(60))
    ...     await cancel_and_wait(task, None)
    ...     return task.cancelled()
    >>> asyncio.run(main())
    True
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

__all__ = ["cancel_and_wait", "finish_within"]


async def cancel_and_wait(*tasks: asyncio.Future[Any] | None) -> None:
    """Cancel the tasks and wait until every one has ended; their outcomes are dropped.

    Args:
        *tasks: The tasks (``None`` entries, for a task never started, are skipped).
    """
    started = [task for task in tasks if task is not None]
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)


async def finish_within(tasks: Collection[asyncio.Future[Any]], grace: float) -> int:
    """Let the tasks finish for up to ``grace`` seconds, then cancel those still running.

    Args:
        tasks: The tasks (workers draining a queue, say).
        grace: Seconds they get in total.

    Returns:
        How many had to be cancelled.
    """
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=grace)
    await cancel_and_wait(*pending)
    return len(pending)
