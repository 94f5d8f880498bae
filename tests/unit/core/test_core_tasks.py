"""Ending owned tasks: cancelled and awaited, errors dropped, the closer's own cancel kept."""

from __future__ import annotations

import asyncio

import pytest

from agentmesh.core.tasks import cancel_and_wait, finish_within


async def test_cancel_and_wait_ends_every_task_and_drops_their_errors() -> None:
    ended: list[str] = []

    async def sleeper(name: str) -> None:
        try:
            await asyncio.sleep(60)
        finally:
            ended.append(name)

    async def failing() -> None:
        raise RuntimeError("boom")

    tasks = [asyncio.create_task(sleeper("a")), asyncio.create_task(sleeper("b"))]
    broken = asyncio.create_task(failing())
    await asyncio.sleep(0)
    await cancel_and_wait(*tasks, broken, None)  # the RuntimeError does not escape
    assert sorted(ended) == ["a", "b"]  # their finally blocks ran before it returned
    assert all(task.cancelled() for task in tasks)


async def test_a_cancel_of_the_closing_task_is_not_swallowed() -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.2)  # takes a while to end
            raise

    async def closer(task: asyncio.Task[None]) -> None:
        await cancel_and_wait(task)

    owned = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    closing = asyncio.create_task(closer(owned))
    await asyncio.sleep(0.05)
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing


async def test_finish_within_lets_quick_tasks_finish_and_cancels_the_rest() -> None:
    quick = asyncio.create_task(asyncio.sleep(0.01, "done"))
    slow = asyncio.create_task(asyncio.sleep(60))
    assert await finish_within({quick, slow}, 0.5) == 1
    assert quick.result() == "done"
    assert slow.cancelled()
    assert await finish_within(set(), 0.5) == 0
