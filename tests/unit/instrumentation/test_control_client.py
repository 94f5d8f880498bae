"""The control client against a real local HTTP server with the collector's long-poll semantics."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from structlog.testing import capture_logs

from agentmesh.core.errors import RunStoppedError
from agentmesh.instrumentation import control
from agentmesh.instrumentation.control import (
    Backoff,
    ControlClient,
    ControlDocument,
    control_base_url,
    control_target,
)
from agentmesh.instrumentation.control.testing import ControlServerThread
from agentmesh.instrumentation.run_context import run_scope
from agentmesh.instrumentation.settings import InstrumentationSettings
from agentmesh.router import FallbackChains, PassThroughPolicy, PinnedPolicy, Pins, RouteRequest

WAIT = 10.0  # functional waits: how long a test may wait for something that should happen

STOP = {
    "action": "stop",
    "detection_id": "det-1",
    "type": "handoff_loop",
    "explanation": "planner → coder → reviewer repeated 3 times",
    "resume_checkpoint_id": "ckpt-7",
    "at": 1_700_000_000.0,
}


def _fast_backoff() -> Backoff:
    return Backoff(initial_s=0.02, maximum_s=0.1)


@pytest.fixture
def server() -> Iterator[ControlServerThread]:
    with ControlServerThread() as running:
        yield running


@pytest.fixture
def clients() -> Iterator[list[ControlClient]]:
    made: list[ControlClient] = []
    yield made
    for client in made:
        client.stop(timeout_s=5.0)
    control.shutdown_control()


def _client(
    made: list[ControlClient], url: str, *, wait_s: float = 25.0, min_interval_s: float = 0.0
) -> ControlClient:
    client = ControlClient(
        url, wait_s=wait_s, min_interval_s=min_interval_s, backoff=_fast_backoff()
    )
    made.append(client)
    return client


def _eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


# --- the long poll ------------------------------------------------------------------------------


def test_new_version_arrives_through_the_held_long_poll(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    server.publish(runs={"r1": {"action": "warn", "type": "ping_pong"}})
    client = _client(clients, server.base_url, wait_s=25.0)
    client.start()
    assert client.wait_for_version(1, WAIT)
    # The client now holds a long poll (after=1) that only a change answers.
    assert server.wait_for_held_poll(WAIT)
    version = server.publish(runs={"r1": STOP})
    assert client.wait_for_version(version, WAIT)

    doc = client.document
    assert doc.version == 2
    assert doc.runs["r1"].action == "stop"
    assert doc.runs["r1"].resume_checkpoint_id == "ckpt-7"
    delivering = [r for r in server.requests if r.status == 200 and r.version == 2]
    assert len(delivering) == 1
    assert delivering[0].after == 1
    assert delivering[0].held  # answered by the change, not by a new request
    assert delivering[0].wait_s == 25.0
    assert delivering[0].if_none_match is None  # a long poll says it with ``after``
    assert server.requests[0].after is None  # the first request asks at once


def test_304_keeps_the_document_and_the_client_asks_again(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    server.publish(breakers={"gpt-4o": {"state": "open", "until": 2e9, "reason": "5xx"}})
    client = _client(clients, server.base_url, wait_s=0.05)
    assert client.poll(long=False)  # synchronous: the document at once
    first = client.document
    assert not client.poll(long=False)  # If-None-Match: "1" → 304
    assert not client.poll(long=True)  # after=1 → held, then 304
    assert client.document is first
    assert client.stats.not_modified == 2
    assert [(r.status, r.if_none_match) for r in server.requests] == [
        (200, None),
        (304, '"1"'),
        (304, None),
    ]
    assert server.requests[2].held

    client.start()  # the thread keeps polling through the 304s
    seen = len(server.requests)
    assert server.wait_for_requests(seen + 3, WAIT)
    assert all(r.status == 304 for r in server.requests[seen:])
    assert client.document is first
    assert client.document.breakers["gpt-4o"].reason == "5xx"


def test_collector_down_keeps_the_last_document_and_never_raises(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    server.publish(runs={"r1": STOP})
    client = _client(clients, server.base_url)
    client.start()
    assert client.wait_for_version(1, WAIT)
    kept = client.document

    with capture_logs() as logs:
        server.stop()  # the held long poll breaks, then connections are refused
        assert _eventually(lambda: client.stats.failures >= 3)
        assert client.running
        assert client.document is kept
        unreachable = [e for e in logs if e["event"] == "agentmesh.control.unreachable"]
        assert len(unreachable) == 1  # once per outage, not per attempt

        # The collector comes back (restarted, without shared state: a smaller version).
        revived = ControlServerThread(port=server.port)
        revived.start()
        try:
            revived.publish(runs={"r2": {"action": "warn"}}, version=1)
            revived.publish(runs={"r2": STOP})  # version 2: a change after the restart
            assert _eventually(lambda: "r2" in client.document.runs)
            assert "r1" not in client.document.runs
            assert revived.requests[0].after is None  # after an outage: ask at once
        finally:
            revived.stop()
    assert any(e["event"] == "agentmesh.control.reconnected" for e in logs)


def test_unreachable_collector_from_the_start(clients: list[ControlClient]) -> None:
    with ControlServerThread() as probe:
        url = probe.base_url  # a port nobody listens on once the probe stops
    client = _client(clients, url)
    client.start()
    assert _eventually(lambda: client.stats.failures >= 2)
    assert client.document.version == 0
    assert control.ControlDocument() == client.document


def test_a_grpc_port_is_named_as_the_wrong_port(clients: list[ControlClient]) -> None:
    # a collector on non-default ports: the URL derived from the OTLP/gRPC endpoint keeps the
    # port, and the answer is HTTP/2 frames; the log says so in words, not in frame bytes
    grpc_server = grpc.server(ThreadPoolExecutor(max_workers=1))
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        with capture_logs() as logs:
            client = _client(clients, f"http://127.0.0.1:{port}")
            client.start()
            assert _eventually(lambda: client.stats.failures >= 2)
    finally:
        grpc_server.stop(grace=None)
    (entry,) = [e for e in logs if e["log_level"] == "warning"]  # once, not per attempt
    assert entry["event"] == "agentmesh.control.wrong_port"
    assert "OTLP/gRPC port" in entry["error"]
    assert "AGENTMESH_CONTROL_URL" in entry["error"]
    assert "\x00" not in entry["error"]
    assert client.document.version == 0


def test_malformed_answer_is_a_failure_and_keeps_the_document(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    server.publish(runs={"r1": STOP})
    client = _client(clients, server.base_url)
    assert client.poll(long=False)
    server.publish_raw(["not", "a", "document"])
    with pytest.raises(ValueError, match="JSON object"):
        client.poll(long=True)
    assert client.document.version == 1
    assert client.document.runs["r1"].action == "stop"


def test_an_empty_collector_is_long_polled_not_hammered(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    client = _client(clients, server.base_url, wait_s=25.0)
    client.start()
    assert server.wait_for_held_poll(WAIT)  # version 0 is a version: after=0 is held
    first, *others = server.requests
    assert (first.after, first.status, first.version) == (None, 200, 0)
    assert others == []
    assert client.document.version == 0
    version = server.publish(breakers={"gpt-4o": {"state": "open", "until": 2e9}})
    assert client.wait_for_version(version, WAIT)
    assert server.requests[1].after == 0
    assert server.requests[1].held


def test_credentials_of_the_span_exporter_are_sent(
    server: ControlServerThread, clients: list[ControlClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret,x-team=a")
    client = control.configure_control(url=server.base_url, wait_s=0.05)
    assert client is not None
    assert server.wait_for_requests(2, WAIT)
    assert {r.authorization for r in server.requests} == {"Bearer s3cret"}


def test_stop_interrupts_a_held_long_poll(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    client = _client(clients, server.base_url, wait_s=25.0)
    client.start()
    server.publish()
    assert client.wait_for_version(1, WAIT)
    assert server.wait_for_held_poll(WAIT)
    client.stop(timeout_s=5.0)
    assert not client.running  # did not wait out the 25 s long poll


# --- the document -------------------------------------------------------------------------------


def test_document_parsing_is_lenient() -> None:
    doc = ControlDocument.from_json(
        {
            "version": 4,
            "runs": {"ok": STOP, "bad-action": {"action": "explode"}, "not-a-map": 3},
            "breakers": {
                "gpt-4o": {"state": "open", "until": 100.0, "provider": "openai"},
                "o3": {"state": "half_open", "until": 50.0},
                "weird": {"state": "melted"},
            },
            "future_field": {"ignored": True},
        }
    )
    assert sorted(doc.runs) == ["ok"]
    assert sorted(doc.breakers) == ["gpt-4o", "o3"]
    assert doc.breakers["gpt-4o"].provider == "openai"
    assert doc.open_breakers(99.0) == {"gpt-4o"}
    assert doc.open_breakers(100.0) == frozenset()  # half-open after until: allowed
    with pytest.raises(ValueError, match="version"):
        ControlDocument.from_json({"runs": {}})


# --- module functions ---------------------------------------------------------------------------


def test_check_run_raises_for_a_stopped_run_and_warns_once(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    server.publish(
        runs={
            "stopped": STOP,
            "warned": {"action": "warn", "detection_id": "det-2", "type": "token_spike"},
        }
    )
    client = _client(clients, server.base_url)
    control.configure_control(client=client)
    assert client.wait_for_version(1, WAIT)

    with pytest.raises(RunStoppedError) as raised:
        control.check_run("stopped")
    error = raised.value
    assert (error.run_id, error.detection_type, error.detection_id) == (
        "stopped",
        "handoff_loop",
        "det-1",
    )
    assert error.resume_checkpoint_id == "ckpt-7"
    assert "planner → coder → reviewer" in str(error)

    with capture_logs() as logs:
        control.check_run("warned")
        control.check_run("warned")
        control.check_run("unknown")
        control.check_run(None)
    warned = [e for e in logs if e["event"] == "agentmesh.control.run_warned"]
    assert len(warned) == 1
    assert warned[0]["detection_type"] == "token_spike"

    with run_scope("stopped"), pytest.raises(RunStoppedError):
        control.check_current_run()
    with run_scope("warned"):
        control.check_current_run()


def test_a_plain_agent_step_of_a_stopped_run_does_not_start(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    from agentmesh.instrumentation import agent, workflow

    server.publish(runs={"stopped": STOP})
    client = _client(clients, server.base_url)
    control.configure_control(client=client)
    assert client.wait_for_version(1, WAIT)
    ran: list[str] = []

    @agent("coder")
    def code() -> None:
        ran.append("coder")

    with workflow("w", run_id="stopped"), pytest.raises(RunStoppedError) as raised:
        code()
    assert (ran, raised.value.detection_id) == ([], "det-1")
    with workflow("w", run_id="running"):
        code()  # another run goes on
    assert ran == ["coder"]


def test_open_breakers_follow_until(
    server: ControlServerThread, clients: list[ControlClient]
) -> None:
    server.publish(
        breakers={
            "gpt-4o": {"state": "open", "until": 1000.0},
            "o3": {"state": "half_open", "until": 2000.0},
        }
    )
    client = _client(clients, server.base_url)
    control.configure_control(client=client)
    assert client.wait_for_version(1, WAIT)
    assert control.open_breakers(999.0) == {"gpt-4o"}
    assert control.open_breakers(1000.0) == frozenset()
    assert control.current().version == 1


def test_control_off_means_an_empty_document(clients: list[ControlClient]) -> None:
    off = InstrumentationSettings.load(control_enabled=False, endpoint="http://c:4317")
    assert control.configure_control(settings=off) is None
    assert control.current().version == 0
    assert control.open_breakers() == frozenset()
    control.check_run("any")  # nothing known: no exception


# --- where the collector is --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("http://127.0.0.1:4317", "http://127.0.0.1:4318"),
        ("http://collector:4318/v1/traces", "http://collector:4318"),
        ("https://otel.example.com/prefix/v1/traces", "https://otel.example.com/prefix"),
        ("collector:4317", "http://collector:4318"),
        ("http://[::1]:4317", "http://[::1]:4318"),
    ],
)
def test_base_url_from_the_otlp_endpoint(endpoint: str, expected: str) -> None:
    assert control_base_url(endpoint) == expected


_ENDPOINT_VARS = (
    "AGENTMESH_ENDPOINT",
    "AGENTMESH_CONTROL_URL",
    "AGENTMESH_CONTROL_ENABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _ENDPOINT_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_enabled_by_default_only_when_a_collector_is_named(clean_env: pytest.MonkeyPatch) -> None:
    assert control_target(InstrumentationSettings.load()) is None
    clean_env.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:4318/v1/traces")
    assert control_target(InstrumentationSettings.load()) == "http://otel:4318"
    clean_env.setenv("AGENTMESH_ENDPOINT", "http://collector:4317")
    assert control_target(InstrumentationSettings.load()) == "http://collector:4318"
    clean_env.setenv("AGENTMESH_CONTROL_URL", "http://control:9000/")
    assert control_target(InstrumentationSettings.load()) == "http://control:9000"
    clean_env.setenv("AGENTMESH_CONTROL_ENABLED", "false")
    assert control_target(InstrumentationSettings.load()) is None
    clean_env.delenv("AGENTMESH_CONTROL_URL")
    clean_env.delenv("AGENTMESH_ENDPOINT")
    clean_env.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    clean_env.setenv("AGENTMESH_CONTROL_ENABLED", "true")  # the default local collector
    assert control_target(InstrumentationSettings.load()) == "http://127.0.0.1:4318"
    assert control_target(InstrumentationSettings.load(disabled=True)) is None


def test_backoff_grows_jittered_and_capped() -> None:
    backoff = Backoff(initial_s=1.0, maximum_s=8.0)
    delays = [backoff.next_delay() for _ in range(8)]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert backoff.failures == 8
    backoff.reset()
    assert backoff.next_delay() <= 1.0


# --- the router passes over open circuits ------------------------------------------------------

_CHAINS = FallbackChains({"gpt-4o": ["gpt-4o-mini", "gpt-4.1"]})


def test_pass_through_chooses_the_next_candidate_when_the_chosen_circuit_is_open() -> None:
    policy = PassThroughPolicy(_CHAINS)
    decision = policy.decide(RouteRequest("openai", "gpt-4o", open_circuits=frozenset({"gpt-4o"})))
    assert decision.chosen == "gpt-4o-mini"
    assert decision.reason == "circuit open for gpt-4o"
    assert decision.candidates == ("gpt-4o-mini", "gpt-4.1", "gpt-4o")
    assert decision.scores == (0.0, 0.0, 1.0)  # the scores follow their models
    assert decision.fallbacks == ("gpt-4.1",)
    assert decision.avoiding({"gpt-4o"}) is decision  # applying it again changes nothing
    assert json.loads(decision.to_json())["avoided"] == ["gpt-4o"]

    # An open fallback is only moved out of the way; the choice stands.
    fallback_open = policy.decide(
        RouteRequest("openai", "gpt-4o", open_circuits=frozenset({"gpt-4o-mini"}))
    )
    assert (fallback_open.chosen, fallback_open.reason) == ("gpt-4o", "requested model")
    assert fallback_open.fallbacks == ("gpt-4.1",)

    # Nothing concerned: the decision is the plain one.
    plain = policy.decide(RouteRequest("openai", "gpt-4o", open_circuits=frozenset({"o3"})))
    assert (plain.chosen, plain.avoided) == ("gpt-4o", ())
    assert "avoided" not in json.loads(plain.to_json())


def test_every_candidate_open_keeps_the_choice() -> None:
    everything = frozenset({"gpt-4o", "gpt-4o-mini", "gpt-4.1"})
    decision = PassThroughPolicy(_CHAINS).decide(
        RouteRequest("openai", "gpt-4o", open_circuits=everything)
    )
    assert decision.chosen == "gpt-4o"
    assert decision.reason == "requested model; circuit open for every candidate"
    assert decision.avoiding(everything) is decision


def test_pinned_model_with_an_open_circuit_falls_to_its_chain() -> None:
    policy = PinnedPolicy(Pins(task_classes={"triage": "gpt-4o"}), _CHAINS)
    request = RouteRequest("openai", "o3", task_class="triage", open_circuits=frozenset({"gpt-4o"}))
    decision = policy.decide(request)
    assert decision.policy == "pinned"
    assert decision.chosen == "gpt-4o-mini"
    assert decision.reason == "circuit open for gpt-4o"
    assert decision.candidates[-1] == "gpt-4o"
