"""Libraries that log through the standard `logging` module come out as our JSON events.

asyncpg's pool warns with a traceback every second or two while PostgreSQL is down; aiohttp,
grpc and redis-py log through `logging` too. Once `configure_logging` ran, each of their
records is one JSON object on standard error (the traceback a field), and asyncpg's repeated
warning is written once a minute at most.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import asyncpg.pool
import pytest
import structlog

from agentmesh.core import configure_logging
from agentmesh.core import log as log_module

_FLOOR = "Failed to restore the pool connection floor; retrying"


@pytest.fixture(autouse=True)
def _no_handler_left() -> Iterator[None]:  # pyright: ignore[reportUnusedFunction]
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, log_module._StdlibHandler):
            root.removeHandler(handler)


def _refused() -> None:
    raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")


def _floor_warning() -> None:
    try:
        _refused()
    except OSError:
        asyncpg.pool.logger.warning(_FLOOR, exc_info=True)  # as asyncpg's pool does


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines()]  # each line is JSON, or this fails


def test_an_asyncpg_warning_is_one_json_object_with_its_traceback_as_a_field(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="info", fmt="json", force=True)
    _floor_warning()
    [event] = _lines(capsys.readouterr().err)
    assert event["event"] == _FLOOR
    assert event["logger"] == "asyncpg.pool"
    assert event["level"] == "warning"
    assert "timestamp" in event
    assert isinstance(event["exception"], str)
    assert event["exception"].startswith("Traceback (most recent call last):")
    assert "ConnectionRefusedError: [Errno 111]" in event["exception"]


def test_repeats_are_written_once_a_minute_and_counted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(log_module.time, "monotonic", lambda: now[0])
    configure_logging(level="info", fmt="json", force=True)
    for _ in range(30):  # a minute of asyncpg retrying every two seconds
        _floor_warning()
        now[0] += 2.0
    _floor_warning()
    events = _lines(capsys.readouterr().err)
    assert [e["event"] for e in events] == [_FLOOR, _FLOOR]
    assert "repeats_suppressed" not in events[0]
    assert events[1]["repeats_suppressed"] == 29
    assert "ConnectionRefusedError" in str(events[1]["exception"])


def test_other_libraries_records_are_json_at_the_configured_level(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="error", fmt="json", force=True)
    logging.getLogger("redis.asyncio.connection").warning("below the level: %s", "dropped")
    try:
        raise ValueError("bad request body")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request")
    logging.getLogger("grpc._server").error("Exception calling application: %s", "boom")
    events = _lines(capsys.readouterr().err)
    assert [(e["logger"], e["event"]) for e in events] == [
        ("aiohttp.server", "Error handling request"),
        ("grpc._server", "Exception calling application: boom"),
    ]
    assert "ValueError: bad request body" in str(events[0]["exception"])
    assert "repeats_suppressed" not in events[1]  # only asyncpg's pool is throttled


def test_configuring_again_installs_one_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="info", fmt="json", force=True)
    configure_logging(level="info", fmt="json", force=True)
    logging.getLogger("aiohttp.client").warning("once")
    assert len(_lines(capsys.readouterr().err)) == 1


def test_nothing_is_written_once_structlog_is_reset(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="info", fmt="json", force=True)
    structlog.reset_defaults()
    _floor_warning()
    assert capsys.readouterr().err == ""


def test_a_collector_process_writes_nothing_but_json() -> None:
    # stderr as a process owning its output has it: no pytest handler, no capture
    script = (
        "import logging, asyncpg.pool\n"
        "from agentmesh.core import configure_logging, get_logger\n"
        "configure_logging()\n"
        "get_logger('agentmesh.collector.x').warning('store unavailable', error='refused')\n"
        "for _ in range(5):\n"
        "    try:\n"
        "        raise ConnectionRefusedError(111, 'Connect call failed')\n"
        "    except OSError:\n"
        f"        asyncpg.pool.logger.warning({_FLOOR!r}, exc_info=True)\n"
        "logging.getLogger('aiohttp.server').error('Error handling request')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    events = _lines(done.stderr)
    assert [e["event"] for e in events] == [
        "store unavailable",
        _FLOOR,
        "Error handling request",
    ]
    assert "Traceback" in str(events[1]["exception"])
