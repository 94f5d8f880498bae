"""Memory and CPU of a process from ``/proc``, and of the decode pool's worker processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from agentmesh.collector.receiver.decode_pool import DecodePool
from agentmesh.collector.receiver.limits import DecodeLimits
from agentmesh.collector.receiver.process_usage import ProcessUsage, process_usage


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
    # fields 14 and 15 (utime, stime) are 150 and 50 ticks
    (proc / "stat").write_text(
        "42 (odd (name) x) S 1 42 42 0 -1 4194304 100 0 0 0 150 50 0 0 20 0 1 0 5 9 2500\n"
    )
    usage = process_usage(42, proc=tmp_path)
    assert usage == ProcessUsage(2500 * os.sysconf("SC_PAGE_SIZE"), 200 / os.sysconf("SC_CLK_TCK"))


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
    assert pool.usage() == []  # not started
    async with pool:
        usage = pool.usage()
        assert len(usage) == 2
        assert all(u.resident_bytes > 10 * 2**20 for u in usage)  # each imported the decoder
        assert all(u.cpu_seconds > 0 for u in usage)
    assert pool.usage() == []
