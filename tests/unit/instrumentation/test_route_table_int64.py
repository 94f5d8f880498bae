"""A route table with a whole number beyond 64 bits is refused whole, and never cached.

Its version goes on every routed call's span (``agentmesh.route.table_version``); OTLP cannot
encode a larger one, so such a table made every span print an encoding traceback, and it was
written to the cache file, to come back at the next start. The models' counts and the
predictor's outcome counts are held in int64 arrays by the router, which could not rank with a
larger one. Such a table is now refused like any other bad one: logged once, the last good
table and the cache file kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agentmesh.core import RouteTableError
from agentmesh.instrumentation.control import Backoff
from agentmesh.instrumentation.route_table import RouteTableClient, load_table
from agentmesh.instrumentation.route_table._cache import read_table
from agentmesh.router import ModelStats, RouteTable
from agentmesh.router.learned import Predictor, QualityModel

WAIT = 10.0  # functional waits: how long a test may wait for something that should happen
_LARGEST = 2**63 - 1


def _predictor(outcomes: int) -> dict[str, object]:
    quality = QualityModel()
    quality.update("chat", 0, "gpt-4o-mini", 0.9, cost_usd=0.0003)
    data: dict[str, object] = json.loads(json.dumps(Predictor(quality).to_dict()))
    sums = data["quality"]["tasks"]["chat"]["gpt-4o-mini"]  # type: ignore[index]
    sums[1] = outcomes  # type: ignore[index]
    return data


def _body(**fields: object) -> bytes:
    return json.dumps({"version": 3, "modes": {"*": "shadow"}, **fields}).encode()


@pytest.mark.parametrize(
    ("body", "said"),
    [
        pytest.param(_body(version=10**30), "version must be a whole number", id="version"),
        pytest.param(_body(version=_LARGEST + 1), f"got {_LARGEST + 1}", id="version-2**63"),
        pytest.param(
            _body(models={"gpt-4o": {"calls": 10**20, "errors": 0}}),
            "models.gpt-4o.calls must be a whole number that fits in 64 bits",
            id="calls",
        ),
        pytest.param(
            _body(predictor=_predictor(10**30)),
            "predictor.quality.tasks.chat.gpt-4o-mini[1] must be a whole number",
            id="predictor-outcomes",
        ),
    ],
)
def test_a_whole_number_beyond_64_bits_refuses_the_table(body: bytes, said: str) -> None:
    with pytest.raises(RouteTableError, match=r"fits in 64 bits") as info:
        read_table(body)
    assert said in str(info.value)


def test_the_largest_64_bit_numbers_are_taken() -> None:
    table = read_table(
        _body(version=_LARGEST, models={"gpt-4o": {"calls": _LARGEST, "errors": _LARGEST}})
    )
    assert table.version == _LARGEST
    assert table.models["gpt-4o"] == ModelStats(calls=_LARGEST, errors=_LARGEST)
    assert read_table(_body(predictor=_predictor(3))).predictor is not None


def test_a_cache_file_with_such_a_number_is_not_taken(tmp_path: Path) -> None:
    cache = tmp_path / "rt.json"
    cache.write_bytes(_body(version=10**30))
    with capture_logs() as logs:
        assert load_table(cache) is None
    refused = [e for e in logs if e["event"] == "agentmesh.route_table.cache_refused"]
    assert len(refused) == 1
    assert "version must be a whole number that fits in 64 bits" in str(refused[0]["error"])


class _Answers(ThreadingHTTPServer):
    answers: list[bytes]


class _Handler(BaseHTTPRequestHandler):
    server: _Answers  # pyright: ignore[reportIncompatibleVariableOverride]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.server.answers[-1]
        etag = f'"{hash(body)}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


@pytest.fixture
def collector() -> Iterator[_Answers]:
    server = _Answers(("127.0.0.1", 0), _Handler)
    server.answers = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_the_client_keeps_its_last_table_and_cache_when_the_version_is_too_large(
    tmp_path: Path, collector: _Answers
) -> None:
    good = RouteTable(version=3, generated_at=1.0, modes={"triage": "enforce"})
    collector.answers.append(good.to_json().encode())
    cache = tmp_path / "rt.json"
    client = RouteTableClient(
        f"http://127.0.0.1:{collector.server_address[1]}",
        cache_path=cache,
        wait_s=0.05,
        min_interval_s=0.0,
        backoff=Backoff(initial_s=0.02, maximum_s=0.1),
    )
    client.start()
    try:
        assert client.wait_for_version(3, WAIT)
        assert client.table == good
        assert _eventually(lambda: client.stats.cache_writes == 1)
        written = cache.read_bytes()
        with capture_logs() as logs:
            collector.answers.append(_body(version=10**30))
            assert _eventually(lambda: client.stats.failures >= 3)
        assert client.table == good
        assert client.stats.cache_writes == 1
        assert cache.read_bytes() == written  # never written with the refused table
        assert load_table(cache) == good
        refused = [e for e in logs if e["event"] == "agentmesh.route_table.refused"]
        assert len(refused) == 1, refused  # once per outage
        assert "version must be a whole number that fits in 64 bits" in str(refused[0]["error"])
        assert refused[0]["version"] == 3
    finally:
        client.stop(timeout_s=5.0)
