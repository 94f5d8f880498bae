"""Memory and CPU of a process from ``/proc``, and of the decode pool's worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from agentmesh.collector.receiver.decode_pool import DecodePool, PoolBusyError
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.receiver.process_usage import PoolUsage, ProcessUsage, process_usage
from agentmesh.collector.testing import SpanFactory, to_otlp_request


def test_this_process_uses_memory_and_its_cpu_time_grows() -> None:
    before = process_usage(os.getpid())
    assert before is not None
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # burn 50 ms of CPU
        pass
    after = process_usage(os.getpid())
    assert after is not None
    assert before.resident_bytes > 10 * 2**20
    assert after.cpu_seconds >= before.cpu_seconds + 0.03


def test_a_command_name_with_spaces_and_parentheses_is_read(tmp_path: Path) -> None:
    proc = tmp_path / "42"
    proc.mkdir()
    (proc / "statm").write_text("9000 2500 300 1 0 2000 0\n")
    # fields 14 and 15 (utime, stime) are 150 and 50 ticks; field 22 (starttime) is 5
    (proc / "stat").write_text(
        "42 (odd (name) x) S 1 42 42 0 -1 4194304 100 0 0 0 150 50 0 0 20 0 1 0 5 9 2500\n"
    )
    usage = process_usage(42, proc=tmp_path)
    assert usage == ProcessUsage(
        2500 * os.sysconf("SC_PAGE_SIZE"), 200 / os.sysconf("SC_CLK_TCK"), start_ticks=5
    )


def test_a_process_that_is_gone_or_unreadable_has_no_usage(tmp_path: Path) -> None:
    assert process_usage(42, proc=tmp_path) is None
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "statm").write_text("garbage")
    (tmp_path / "7" / "stat").write_text("7 (x) S")
    assert process_usage(7, proc=tmp_path) is None
    (tmp_path / "7" / "statm").write_text("9000 2500 300 1 0 2000 0")
    (tmp_path / "7" / "stat").write_text("truncated")
    assert process_usage(7, proc=tmp_path) is None


async def test_the_decode_pool_reports_its_running_workers() -> None:
    pool = DecodePool(2, DecodeLimits())
    assert pool.usage() == PoolUsage(0, 0, 0.0)  # not started
    async with pool:
        usage = pool.usage()
        assert usage.workers == 2
        assert usage.resident_bytes > 2 * 10 * 2**20  # each imported the decoder
        assert usage.cpu_seconds > 0
    after = pool.usage()
    assert (after.workers, after.resident_bytes) == (0, 0)
    assert after.cpu_seconds >= usage.cpu_seconds  # the stopped workers' time is kept


def _busy_payload() -> bytes:
    f = SpanFactory()
    root = f.workflow("busy", run_id="run-busy")
    spans = [root]
    for index in range(100):
        agent = f.agent(f"agent-{index % 3}", parent=root)
        spans += [agent, f.chat(parent=agent, input_tokens=900, output_tokens=40)]
    return to_otlp_request(spans).SerializeToString()


async def test_the_workers_cpu_time_never_decreases_when_a_worker_is_replaced() -> None:
    payload = _busy_payload()
    async with DecodePool(1, DecodeLimits()) as pool:
        first = pool.usage()
        for _ in range(300):  # well over a second of decoding in the one worker
            await pool.decode(payload)
        busy = pool.usage()
        assert busy.cpu_seconds > first.cpu_seconds + 0.5
        executor = pool._executor  # pyright: ignore[reportPrivateUsage]
        assert executor is not None
        for pid in list(executor._processes):  # pyright: ignore[reportPrivateUsage]
            os.kill(pid, signal.SIGKILL)
        for _ in range(100):  # the pool notices the death on its next use, then restarts
            try:
                await pool.decode(payload)
                if pool.restarts:
                    break
            except PoolBusyError:
                pass
            await asyncio.sleep(0.05)
        assert pool.restarts == 1
        after = pool.usage()
        assert after.workers == 1  # the new worker announced itself
        # the dead worker's time stays in the total; the new one starts from zero on its own
        assert after.cpu_seconds >= busy.cpu_seconds
