"""``GET /v1/control`` and ``GET /metrics`` on the real OTLP/HTTP server (aiohttp, real sockets).

ETag and 304, long polls answered early on a change or with 304 when the wait runs out, bad
parameters, auth, the OTLP path untouched, and two collectors sharing one Redis document.
"""

import asyncio
import json
import secrets
from collections.abc import AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from agentmesh.collector import CollectorSettings, OtlpHttpReceiver
from agentmesh.collector.recovery import (
    Breaker,
    ControlState,
    MemoryControlState,
    RedisControlState,
    RunControl,
    control_routes,
)
from agentmesh.collector.testing import SpanFactory, to_otlp_request
from agentmesh.core import ReceiverError

T0 = 1_800_000_000.0
STOP = RunControl("stop", "det-1", "ping_pong", "A→B→A→B", "ckpt-1", T0)


def _settings(**overrides: object) -> CollectorSettings:
    values: dict[str, object] = {"grpc_port": 0, "http_port": 0, "grpc_grace_seconds": 1.0}
    return CollectorSettings.load(**(values | overrides))


def _metrics() -> bytes:
    return b"# TYPE agentmesh_spans_received_total counter\nagentmesh_spans_received_total 7\n"


@pytest.fixture
async def served() -> AsyncIterator[tuple[ControlState, str, aiohttp.ClientSession]]:
    received: list[int] = []

    def sink(batch: object) -> bool:
        received.append(1)
        return True

    async with (
        MemoryControlState() as state,
        OtlpHttpReceiver(
            sink, _settings(), extra_routes=control_routes(state), metrics=_metrics
        ) as receiver,
        aiohttp.ClientSession() as session,
    ):
        yield state, receiver.endpoint, session


async def test_etag_and_if_none_match(
    served: tuple[ControlState, str, aiohttp.ClientSession],
) -> None:
    state, base, session = served
    async with session.get(f"{base}/v1/control") as response:
        assert response.status == 200
        assert response.headers["ETag"] == '"0"'
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.content_type == "application/json"
        assert await response.json() == {"version": 0, "runs": {}, "breakers": {}}
    async with session.get(f"{base}/v1/control", headers={"If-None-Match": '"0"'}) as response:
        assert response.status == 304
        assert response.headers["ETag"] == '"0"'
        assert await response.read() == b""
    await state.set_run("run-1", STOP)
    await state.open_breaker("gpt-4o", Breaker("open", T0 + 30, "outage", "det-2", "openai", 30))
    async with session.get(f"{base}/v1/control", headers={"If-None-Match": '"0"'}) as response:
        assert response.status == 200
        assert response.headers["ETag"] == '"2"'
        body = await response.json()
    assert body["version"] == 2
    assert body["runs"]["run-1"] == {
        "action": "stop",
        "detection_id": "det-1",
        "type": "ping_pong",
        "explanation": "A→B→A→B",
        "resume_checkpoint_id": "ckpt-1",
        "at": T0,
    }
    assert body["breakers"]["gpt-4o"] == {
        "state": "open",
        "until": T0 + 30,
        "reason": "outage",
        "detection_id": "det-2",
        "provider": "openai",
    }
    for tag in ('W/"2"', '"1", "2"', "*"):
        async with session.get(f"{base}/v1/control", headers={"If-None-Match": tag}) as response:
            assert response.status == 304, tag
    async with session.get(f"{base}/v1/control?after=2") as response:
        assert response.status == 304  # no wait: answered at once
    async with session.get(f"{base}/v1/control?after=1") as response:
        assert response.status == 200


async def test_long_poll_answers_early_on_a_change(
    served: tuple[ControlState, str, aiohttp.ClientSession],
) -> None:
    state, base, session = served

    async def poll() -> tuple[int, dict[str, object]]:
        async with session.get(f"{base}/v1/control?after=0&wait=25") as response:
            return response.status, await response.json()

    polling = asyncio.create_task(poll())
    await asyncio.sleep(0.2)
    assert not polling.done()
    await state.set_run("run-1", STOP)
    status, body = await polling  # a 304 after 25 s if the change did not wake it
    assert status == 200
    assert body["version"] == 1
    assert list(body["runs"]) == ["run-1"]  # type: ignore[call-overload]


async def test_long_poll_with_if_none_match(
    served: tuple[ControlState, str, aiohttp.ClientSession],
) -> None:
    state, base, session = served

    async def poll() -> int:
        async with session.get(
            f"{base}/v1/control?wait=25", headers={"If-None-Match": '"0"'}
        ) as response:
            return response.status

    polling = asyncio.create_task(poll())
    await asyncio.sleep(0.2)
    await state.clear_run("nothing")  # no change: no answer
    assert not polling.done()
    await state.set_run("run-1", STOP)
    assert await polling == 200


async def test_long_poll_times_out_with_304(
    served: tuple[ControlState, str, aiohttp.ClientSession],
) -> None:
    state, base, session = served
    await state.set_run("run-1", STOP)
    async with session.get(f"{base}/v1/control?after=1&wait=0.3") as response:
        assert response.status == 304
        assert response.headers["ETag"] == '"1"'


async def test_a_client_ahead_of_the_collector_is_answered_at_once(
    served: tuple[ControlState, str, aiohttp.ClientSession],
) -> None:
    _, base, session = served
    async with session.get(f"{base}/v1/control?after=50&wait=25") as response:
        assert response.status == 200
        assert (await response.json())["version"] == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("after=x", "after must be a version (an integer), got 'x'"),
        ("after=-1", "after must be 0 or more"),
        ("after=1&wait=soon", "wait must be a number of seconds, got 'soon'"),
        ("after=1&wait=-1", "wait must be between 0 and 30 seconds"),
        ("after=1&wait=nan", "wait must be between 0 and 30 seconds"),
        ("after=1&wait=100000", "wait must be between 0 and 30 seconds, got 100000.0"),
        ("after=1&wait=30.01", "wait must be between 0 and 30 seconds"),
    ],
)
async def test_bad_parameters_are_400(
    served: tuple[ControlState, str, aiohttp.ClientSession], query: str, message: str
) -> None:
    _, base, session = served
    async with session.get(f"{base}/v1/control?{query}") as response:
        assert response.status == 400
        assert message in await response.text()


async def test_other_methods_are_405(
    served: tuple[ControlState, str, aiohttp.ClientSession],
) -> None:
    _, base, session = served
    async with session.post(f"{base}/v1/control", data=b"{}") as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"


async def test_metrics_and_the_otlp_path_are_served(
    served: tuple[ControlState, str, aiohttp.ClientSession],
) -> None:
    _, base, session = served
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4"
        assert await response.read() == _metrics()
    f = SpanFactory()
    body = to_otlp_request([f.workflow("w")]).SerializeToString()
    async with session.post(
        f"{base}/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"}
    ) as response:
        assert response.status == 200
    async with session.get(f"{base}/v1/elsewhere") as response:
        assert response.status == 404


async def test_a_failing_renderer_is_a_500() -> None:
    def broken() -> bytes:
        raise RuntimeError("boom")

    async with (
        OtlpHttpReceiver(lambda batch: True, _settings(), metrics=broken) as receiver,
        aiohttp.ClientSession() as session,
        session.get(f"{receiver.endpoint}/metrics") as response,
    ):
        assert response.status == 500


async def test_extra_routes_need_the_receivers_credentials() -> None:
    state = MemoryControlState()
    settings = _settings(auth_bearer_tokens="s3cret")
    async with (
        OtlpHttpReceiver(
            lambda batch: True, settings, extra_routes=control_routes(state), metrics=_metrics
        ) as receiver,
        aiohttp.ClientSession() as session,
    ):
        for path in ("/v1/control", "/metrics"):
            async with session.get(receiver.endpoint + path) as response:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"] == "Bearer"
            async with session.get(
                receiver.endpoint + path, headers={"Authorization": "Bearer s3cret"}
            ) as response:
                assert response.status == 200, path


def test_extra_routes_cannot_take_the_served_paths() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    with pytest.raises(ReceiverError, match="cannot take /v1/traces"):
        OtlpHttpReceiver(
            lambda batch: True, _settings(), extra_routes=[web.get("/v1/traces", handler)]
        )
    with pytest.raises(ReceiverError, match="cannot take /metrics"):
        OtlpHttpReceiver(
            lambda batch: True,
            _settings(),
            extra_routes=[web.get("/metrics", handler)],
            metrics=_metrics,
        )


async def test_a_long_poll_ends_when_the_server_stops() -> None:
    state = MemoryControlState()
    # a grace far longer than the test: the poll must end because the server stops, not be cut
    receiver = OtlpHttpReceiver(
        lambda batch: True, _settings(grpc_grace_seconds=25.0), extra_routes=control_routes(state)
    )
    async with aiohttp.ClientSession() as session:
        await receiver.start()

        async def poll() -> int:
            async with session.get(f"{receiver.endpoint}/v1/control?after=0&wait=30") as response:
                return response.status

        polling = asyncio.create_task(poll())
        await asyncio.sleep(0.2)
        await receiver.stop()
        assert await polling == 304


# --- two collectors, one Redis ----------------------------------------------------------------


@pytest.fixture
async def redis_prefix(redis_address: tuple[str, int]) -> AsyncIterator[tuple[str, str]]:
    host, port = redis_address
    url = f"redis://{host}:{port}/0"
    prefix = f"test-control-http-{secrets.token_hex(4)}:"
    yield url, prefix
    client = aioredis.Redis.from_url(url)  # pyright: ignore[reportUnknownMemberType]
    await client.delete(f"{prefix}control")
    await client.aclose()


async def test_a_change_on_one_collector_answers_the_long_poll_on_another(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    async with (
        RedisControlState(url, prefix=prefix) as first,
        RedisControlState(url, prefix=prefix) as second,
        OtlpHttpReceiver(
            lambda batch: True, _settings(), extra_routes=control_routes(second)
        ) as receiver,
        aiohttp.ClientSession() as session,
    ):

        async def poll() -> tuple[int, str]:
            async with session.get(f"{receiver.endpoint}/v1/control?after=0&wait=25") as response:
                return response.status, await response.text()

        polling = asyncio.create_task(poll())
        await asyncio.sleep(0.2)
        assert not polling.done()
        await first.set_run("run-1", STOP)  # the first collector decides
        status, text = await polling  # the second one's poller hears of it
        assert status == 200
        assert json.loads(text)["runs"]["run-1"]["detection_id"] == "det-1"
