"""The control document store: JSON form, versions, long polls; in memory and on real Redis.

Redis: two stores on one server see each other's changes and wake each other's long polls,
concurrent changes from both are never lost, and a Redis that goes away (a TCP proxy the test
stops) leaves the store serving and changing its last known document, replayed on return.
"""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from agentmesh.collector.recovery import (
    Breaker,
    ControlDocument,
    ControlState,
    MemoryControlState,
    RedisControlState,
    RunControl,
)
from agentmesh.core import ConfigError

T0 = 1_800_000_000.0


def _stop(detection_id: str = "det-1", at: float = T0) -> RunControl:
    return RunControl("stop", detection_id, "handoff_loop", "a → b → c x4", "ckpt-3", at)


# --- the document ----------------------------------------------------------------------------


def test_public_json_is_exactly_the_contract() -> None:
    doc = ControlDocument(
        4,
        {"run-1": _stop()},
        {"gpt-4o": Breaker("half_open", T0 + 30, "outage", "det-2", None, 30)},
    )
    assert json.loads(doc.to_json(public=True)) == {
        "version": 4,
        "runs": {
            "run-1": {
                "action": "stop",
                "detection_id": "det-1",
                "type": "handoff_loop",
                "explanation": "a → b → c x4",
                "resume_checkpoint_id": "ckpt-3",
                "at": T0,
            }
        },
        "breakers": {
            "gpt-4o": {
                "state": "half_open",
                "until": T0 + 30,
                "reason": "outage",
                "detection_id": "det-2",
                "provider": None,
            }
        },
    }
    assert ControlDocument.from_json(doc.to_json()) == doc
    assert doc.etag == '"4"'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "not JSON"),
        ("[]", "the control document must be a JSON object"),
        ('{"version": -1}', "version must be a non-negative integer"),
        ('{"runs": {"r": {"action": "halt"}}}', "runs['r'].action must be one of stop, warn"),
        ('{"breakers": {"m": {"state": "open", "until": "soon"}}}', "breakers['m'].until must be"),
    ],
)
def test_malformed_documents_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ControlDocument.from_json(text)


# --- in memory --------------------------------------------------------------------------------


async def test_memory_versions_increase_only_on_change() -> None:
    async with MemoryControlState() as state:
        assert state.current == ControlDocument()
        assert await state.set_run("run-1", _stop())
        assert not await state.set_run("run-1", _stop())  # same entry: no new version
        assert await state.open_breaker("m", Breaker("open", T0 + 30, "r", "d"))
        assert await state.close_breaker("m")
        assert not await state.close_breaker("m")
        assert await state.clear_run("run-1")
        assert state.current.version == 4
        assert state.current.runs == {}
        assert state.current.breakers == {}


async def test_memory_expiry_half_opens_then_drops() -> None:
    async with MemoryControlState() as state:
        await state.open_breaker("m", Breaker("open", T0 + 30, "r", "d", None, 30))
        await state.set_run("run-1", _stop(at=T0))
        assert not await state.expire(T0 + 29, run_ttl_seconds=60, half_open_ttl_seconds=60)
        assert await state.expire(T0 + 30, run_ttl_seconds=60, half_open_ttl_seconds=60)
        assert state.current.breakers["m"].state == "half_open"
        assert await state.expire(T0 + 90, run_ttl_seconds=60, half_open_ttl_seconds=60)
        assert state.current.runs == {}
        assert state.current.breakers == {}


async def _long_poll_contract(
    writer: ControlState, reader: ControlState, run_id: str = "run-lp"
) -> None:
    """What every backend does for a long poll (``reader`` may be another collector's store)."""
    start = reader.current.version
    assert await reader.wait_for(start, wait_seconds=0.05) is None  # nothing new: times out
    waiting = asyncio.create_task(reader.wait_for(start, wait_seconds=20))
    await asyncio.sleep(0)
    assert not waiting.done()
    assert await writer.set_run(run_id, _stop("det-lp"))
    document = await waiting  # would be None after 20 s if the change did not wake it
    assert document is not None
    assert document.version > start
    assert document.runs[run_id].detection_id == "det-lp"
    # a client ahead of the store (the document was reset) is answered at once
    ahead = await reader.wait_for(document.version + 100, wait_seconds=20)
    assert ahead is not None
    assert ahead.version == reader.current.version


async def test_memory_long_poll() -> None:
    async with MemoryControlState() as state:
        await _long_poll_contract(state, state)


# --- Redis ------------------------------------------------------------------------------------


@pytest.fixture
def redis_url(redis_address: tuple[str, int]) -> str:
    host, port = redis_address
    return f"redis://{host}:{port}/0"


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"test-control-{secrets.token_hex(4)}:"
    yield name
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    await client.delete(f"{name}control")
    await client.aclose()


async def test_redis_stores_the_document_and_announces_versions(
    redis_url: str, prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    pubsub = client.pubsub()  # pyright: ignore[reportUnknownMemberType]
    await pubsub.subscribe(f"{prefix}control")
    await pubsub.get_message(timeout=1)  # the subscription confirmation
    try:
        async with RedisControlState(redis_url, prefix=prefix) as state:
            assert state.key == state.channel == f"{prefix}control"
            await state.set_run("run-1", _stop())
            stored = ControlDocument.from_json(str(await client.get(f"{prefix}control")))
            assert stored == state.current
            assert stored.version == 1
            assert stored.runs["run-1"] == _stop()
            notice = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)  # pyright: ignore[reportUnknownVariableType]
            assert notice is not None
            assert notice["data"] == "1"
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_two_redis_stores_see_and_wake_each_other(redis_url: str, prefix: str) -> None:
    async with (
        RedisControlState(redis_url, prefix=prefix) as a,
        RedisControlState(redis_url, prefix=prefix) as b,
    ):
        await _long_poll_contract(a, b)
        await _long_poll_contract(b, a, "run-lp-2")
        await a.open_breaker("gpt-4o", Breaker("open", T0 + 30, "outage", "det-9", "openai", 30))
        seen = await b.wait_for(a.current.version - 1, wait_seconds=20)
        assert seen is not None
        assert seen.breakers["gpt-4o"].provider == "openai"
        assert b.current == a.current


async def test_concurrent_changes_from_two_collectors_are_never_lost(
    redis_url: str, prefix: str
) -> None:
    async with (
        RedisControlState(redis_url, prefix=prefix) as a,
        RedisControlState(redis_url, prefix=prefix) as b,
    ):
        await asyncio.gather(
            *(a.set_run(f"a-{i}", _stop(f"det-a{i}")) for i in range(15)),
            *(b.set_run(f"b-{i}", _stop(f"det-b{i}")) for i in range(15)),
        )
        final = await a.get()
        assert len(final.runs) == 30
        assert final.version == 30  # one version per change, none overwritten
        assert (await b.get()) == final


async def test_a_redis_reset_is_survived(redis_url: str, prefix: str) -> None:
    async with RedisControlState(redis_url, prefix=prefix) as state:
        await state.set_run("run-1", _stop())
        await state.set_run("run-2", _stop())
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
        await client.delete(f"{prefix}control")
        await client.aclose()
        assert (await state.get()).runs == {}
        await state.set_run("run-3", _stop())
        assert state.current.version == 3  # versions keep increasing for the pollers


async def test_garbage_in_the_key_keeps_the_last_document_until_the_next_change(
    redis_url: str, prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)  # pyright: ignore[reportUnknownMemberType]
    try:
        async with RedisControlState(redis_url, prefix=prefix) as state:
            await state.set_run("run-1", _stop())
            kept = state.current
            await client.set(f"{prefix}control", '{"version": 7, "runs": 3}')  # pyright: ignore[reportUnknownMemberType]
            with capture_logs() as logs:
                assert await state.get() == kept  # stopped runs are not forgotten
                assert await state.get() == kept
            unreadable = [e for e in logs if "unreadable" in str(e["event"])]
            assert len(unreadable) == 1  # logged once for the same text
            assert await state.set_run("run-2", _stop("det-2"))
            assert set(state.current.runs) == {"run-1", "run-2"}
            assert state.current.version == kept.version + 1
            raw = str(await client.get(f"{prefix}control"))  # pyright: ignore[reportUnknownMemberType]
            assert ControlDocument.from_json(raw) == state.current
    finally:
        await client.aclose()


def test_redis_store_refuses_bad_settings() -> None:
    with pytest.raises(ConfigError, match="prefix"):
        RedisControlState(prefix="")
    with pytest.raises(ConfigError, match="positive"):
        RedisControlState(timeout_seconds=0)


class _Proxy:
    """A TCP proxy to Redis the test can cut and restore: a real outage, on a real socket."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if server is not None:  # since Python 3.12.1 this waits for the connections' handlers
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        tasks = {
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        }
        self._pipes |= tasks
        await asyncio.gather(*tasks, return_exceptions=True)
        self._pipes -= tasks

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def test_a_dead_redis_fails_open_and_changes_are_replayed(
    redis_address: tuple[str, int], redis_url: str, prefix: str
) -> None:
    proxy = _Proxy(*redis_address)
    await proxy.start()
    state = RedisControlState(
        f"redis://127.0.0.1:{proxy.port}/0",
        prefix=prefix,
        timeout_seconds=0.5,
        retry_seconds=0.2,
        refresh_seconds=0.5,
    )
    async with state, RedisControlState(redis_url, prefix=prefix) as other:
        await state.set_run("before", _stop())
        await proxy.cut()
        with capture_logs() as logs:
            assert await state.set_run("during", _stop("det-2"))  # applied locally
            assert await state.get() == state.current  # serves the last known document
        assert set(state.current.runs) == {"before", "during"}
        assert not state.health.available
        assert state.health.pending_changes == 1
        assert any(
            e["event"] == "Redis control document unavailable; serving the last known one"
            and e["log_level"] == "warning"
            for e in logs
        )
        assert "during" not in (await other.get()).runs
        await proxy.start()  # Redis is back (same port): the subscriber reconnects and replays
        replayed = await other.wait_for(1, wait_seconds=20)
        assert replayed is not None
        assert set(replayed.runs) == {"before", "during"}
        for _ in range(200):
            if state.health.available and not state.health.pending_changes:
                break
            await asyncio.sleep(0.05)
        assert state.health.available
        assert state.health.pending_changes == 0
        assert state.current == replayed
    await proxy.cut()


async def test_a_redis_never_reached_is_logged_not_raised() -> None:
    with capture_logs() as logs:
        async with RedisControlState("redis://127.0.0.1:1/0", timeout_seconds=0.3) as state:
            assert await state.set_run("run-1", _stop())
            assert state.current.version == 1
            assert state.health.failures >= 1
            assert "cannot reach Redis at 127.0.0.1:1" in (state.health.last_error or "")
    assert any(e["event"] == "control document changes never reached Redis" for e in logs)
