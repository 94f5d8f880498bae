"""Why a receiver port cannot be listened on, in words (gRPC only says that binding failed)."""

from __future__ import annotations

import socket

from agentmesh.collector.receiver.base import bind_problem


def test_a_free_port_has_no_problem() -> None:
    assert bind_problem("127.0.0.1", 0) is None


def test_a_port_in_use_is_named_so() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert bind_problem("127.0.0.1", port) == (
            "address already in use (another collector, or another program, listens there)"
        )


def test_an_address_of_another_machine_is_named_so() -> None:
    assert bind_problem("192.0.2.1", 4317) == "no such address on this machine"  # TEST-NET-1


def test_an_unknown_host_is_named_so() -> None:
    assert bind_problem("no-such-host.invalid", 4317) == "unknown host 'no-such-host.invalid'"
