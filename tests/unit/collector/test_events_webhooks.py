"""Detection webhooks against real local HTTP servers: delivery, retries, give-up, overflow."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from agentmesh.collector.detection import Detection, detection_id
from agentmesh.collector.events import WebhookNotifier, WebhookStats, WebhookTarget, webhook_targets
from agentmesh.collector.forward.testing import SinkAnswer, SinkServer
from agentmesh.collector.hot_state import detection_from_json
from agentmesh.core import ConfigError

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _detection(key: str = "k") -> Detection:
    return Detection(
        id=detection_id("tool_loop", TRACE, key),
        type="tool_loop",
        severity="warning",
        trace_id=TRACE,
        run_id="run-7",
        agent="researcher",
        span_ids=("00f067aa0ba902b7",),
        explanation="web_search called 5 times with the same arguments and result",
        detected_at_ns=1_800_000_000_000_000_000,
        details={"tool": "web_search", "repeats": 5},
    )


def _notifier(*urls: str, **options: object) -> WebhookNotifier:
    defaults: dict[str, object] = {"initial_backoff_seconds": 0.01, "flush_timeout_seconds": 5.0}
    defaults.update(options)
    return WebhookNotifier([WebhookTarget(u) for u in urls], **defaults)  # pyright: ignore[reportArgumentType]


async def _until(notifier: WebhookNotifier, done: Callable[[WebhookStats], bool]) -> WebhookStats:
    async with asyncio.timeout(10):
        while not done(notifier.stats):  # noqa: ASYNC110 - counters have no event to await
            await asyncio.sleep(0.01)
    return notifier.stats


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_delivers_the_detection_as_json_with_headers() -> None:
    async with SinkServer() as one, SinkServer() as two:
        targets = webhook_targets(
            [one.url("/hooks/a"), two.url("/hooks/b")],
            {one.url("/hooks/a"): {"Authorization": SecretStr("Bearer hook-secret")}},
        )
        detection = _detection()
        async with WebhookNotifier(targets) as notifier:
            notifier.offer(detection)
            stats = await _until(notifier, lambda s: s.delivered == 2)
        (first,), (second,) = one.requests, two.requests
    assert (first.method, first.path, second.path) == ("POST", "/hooks/a", "/hooks/b")
    assert detection_from_json(first.body) == detection == detection_from_json(second.body)
    assert json.loads(first.body)["details"] == {"tool": "web_search", "repeats": 5}
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-agentmesh-event"] == "detection"
    assert first.headers["x-agentmesh-detection-id"] == detection.id
    assert first.headers["authorization"] == "Bearer hook-secret"
    assert "authorization" not in second.headers
    assert stats == WebhookStats(offered=2, delivered=2)


async def test_retries_after_a_503_honouring_retry_after() -> None:
    async with SinkServer() as sink:
        sink.script(SinkAnswer(503, retry_after="0"), SinkAnswer(429, retry_after="0"))
        async with _notifier(sink.url("/h")) as notifier:
            notifier.offer(_detection())
            stats = await _until(notifier, lambda s: s.delivered == 1)
        assert len(sink.requests) == 3
        assert len({r.body for r in sink.requests}) == 1
    assert (stats.retried, stats.failed, stats.dropped) == (2, 0, 0)


async def test_gives_up_after_max_attempts_and_logs_without_the_url_path() -> None:
    async with SinkServer(always=SinkAnswer(500)) as sink:
        with capture_logs() as logs:
            async with _notifier(sink.url("/T0123/secret-token"), max_attempts=3) as notifier:
                notifier.offer(_detection())
                stats = await _until(notifier, lambda s: s.failed == 1)
        assert len(sink.requests) == 3
    assert (stats.delivered, stats.retried, stats.failed) == (0, 2, 1)
    (warning,) = [e for e in logs if e["event"].startswith("webhook delivery failed")]
    assert "gave up after 3 attempts" in warning["reason"]
    assert "secret-token" not in json.dumps(logs, default=str)


async def test_client_errors_are_final() -> None:
    async with SinkServer(always=SinkAnswer(400)) as sink:
        async with _notifier(sink.url("/h")) as notifier:
            notifier.offer(_detection())
            stats = await _until(notifier, lambda s: s.failed == 1)
        assert len(sink.requests) == 1
    assert stats.retried == 0


async def test_connection_refused_is_retried_then_given_up() -> None:
    url = f"http://127.0.0.1:{_closed_port()}/h"
    async with _notifier(url, max_attempts=2) as notifier:
        notifier.offer(_detection())
        stats = await _until(notifier, lambda s: s.failed == 1)
    assert (stats.retried, stats.delivered) == (1, 0)


async def test_full_queue_drops_the_oldest_and_never_blocks() -> None:
    async with SinkServer(always=SinkAnswer(hang=True)) as sink:
        notifier = _notifier(sink.url("/h"), queue_max=2, flush_timeout_seconds=0.1)
        async with notifier:
            notifier.offer(_detection("first"))
            await sink.wait_for(1)  # the worker holds "first", in flight
            for index in range(10):
                notifier.offer(_detection(str(index)))  # returns at once every time
            during = notifier.stats
        after = notifier.stats
    assert (during.offered, during.in_flight, during.queued, during.dropped) == (11, 1, 2, 8)
    assert (after.queued, after.in_flight, after.dropped, after.delivered) == (0, 0, 11, 0)


async def test_offers_outside_the_running_window_are_dropped_and_counted() -> None:
    async with SinkServer() as sink:
        notifier = _notifier(sink.url("/h"))
        notifier.offer(_detection("early"))
        async with notifier:
            pass
        notifier.offer(_detection("late"))
        assert sink.requests == []
    assert notifier.stats == WebhookStats(offered=2, dropped=2)


def test_targets_are_checked() -> None:
    with pytest.raises(ConfigError, match="absolute http"):
        WebhookTarget("ftp://example.com/x")
    with pytest.raises(ConfigError, match="not configured"):
        webhook_targets(["https://a.example/h"], {"https://b.example/h": {}})
    with pytest.raises(ConfigError, match="twice"):
        webhook_targets(["https://a.example/h", "https://a.example/h"])
    target = WebhookTarget("https://hooks.example.com:8443/T01/secret", {"k": SecretStr("v")})
    assert target.public_url == "https://hooks.example.com:8443"
    assert "v" not in repr(target.headers["k"])
