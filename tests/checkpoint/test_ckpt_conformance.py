"""The official LangGraph checkpointer conformance suite against every AgentMesh saver.

``langgraph-checkpoint-conformance`` detects which capabilities a saver implements and runs
its spec for each; every AgentMesh saver must implement and pass all of them (the five base
capabilities and the three extended ones: delete_for_runs, copy_thread, prune).

Each report is printed into the pytest output as it is produced (through
``capsys.disabled()``, so it shows with ``-q`` and in CI logs), and attached to the test as
the ``conformance`` property (JUnit XML).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _ckpt_saver_backends import BACKENDS, make_backend
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES
from langgraph.checkpoint.conformance.spec import (
    test_copy_thread,
    test_delete_for_runs,
    test_delete_thread,
    test_get_tuple,
    test_list,
    test_prune,
    test_put,
    test_put_writes,
)

SPEC_TESTS = {
    "put": len(test_put.ALL_PUT_TESTS),
    "put_writes": len(test_put_writes.ALL_PUT_WRITES_TESTS),
    "get_tuple": len(test_get_tuple.ALL_GET_TUPLE_TESTS),
    "list": len(test_list.ALL_LIST_TESTS),
    "delete_thread": len(test_delete_thread.ALL_DELETE_THREAD_TESTS),
    "delete_for_runs": len(test_delete_for_runs.ALL_DELETE_FOR_RUNS_TESTS),
    "copy_thread": len(test_copy_thread.ALL_COPY_THREAD_TESTS),
    "prune": len(test_prune.ALL_PRUNE_TESTS),
}
"""How many spec tests each capability has (all must run and pass)."""


@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_official_conformance_suite_passes_every_capability(
    backend_name: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: pytest.RecordProperty,
) -> None:
    backend = make_backend(backend_name, request, tmp_path)

    async def factory() -> AsyncIterator[BaseCheckpointSaver[str]]:
        async with backend.open() as saver:
            yield saver

    registered = checkpointer_test(name=f"agentmesh-{backend_name}")(factory)
    report = await validate(registered, progress=None)

    with capsys.disabled():
        report.print_report()
    record_property("conformance", report.to_dict())

    expected = {capability.value for capability in ALL_CAPABILITIES}
    detected = {name for name, result in report.results.items() if result.detected}
    assert detected == expected, f"capabilities not detected: {sorted(expected - detected)}"
    failures = {
        name: result.failures
        for name, result in report.results.items()
        if result.passed is not True
    }
    assert not failures, f"{backend_name}: failed capabilities {failures}"
    assert report.conformance_level() == "FULL"
    passed = {name: result.tests_passed for name, result in report.results.items()}
    assert passed == SPEC_TESTS
