"""Finding a run by a run id or trace id, or a unique prefix of either (``find_run``)."""

from __future__ import annotations

import pytest

from agentmesh.collector import MemoryStore
from agentmesh.collector.store.lookup import MAX_MATCHES, RunNotFoundError, find_run
from agentmesh.collector.testing import SpanFactory, graph_of


async def _store(run_ids: list[str]) -> tuple[MemoryStore, list[SpanFactory]]:
    store = MemoryStore()
    factories = [SpanFactory(start_ns=1_000 * (i + 1)) for i in range(len(run_ids))]
    for f, run_id in zip(factories, run_ids, strict=True):
        await store.write_graph(graph_of([f.workflow("w", run_id=run_id)]))
    return store, factories


async def test_an_exact_run_id_wins_over_longer_ones() -> None:
    store, _ = await _store(["run-1", "run-10", "run-11"])
    assert (await find_run(store, "RUN-1")).run_id == "run-1"
    with pytest.raises(RunNotFoundError, match="no run matches 'run-1x'"):
        await find_run(store, "run-1x")
    with pytest.raises(RunNotFoundError, match="3 runs match 'run-'") as raised:
        await find_run(store, "run-")
    assert raised.value.matches == 3


async def test_a_trace_id_prefix_finds_its_run() -> None:
    store, factories = await _store(["a", "b"])
    assert (await find_run(store, factories[1].trace_id[:8].upper())).run_id == "b"


async def test_many_matches_are_counted_up_to_a_bound() -> None:
    store, _ = await _store([f"run-{i}" for i in range(MAX_MATCHES + 5)])
    with pytest.raises(RunNotFoundError, match=f"more than {MAX_MATCHES} runs match 'run-'"):
        await find_run(store, "run-")
    with pytest.raises(RunNotFoundError, match="no run matches ' '"):
        await find_run(store, " ")


async def test_ids_that_differ_only_in_case_are_told_apart_by_case() -> None:
    store, factories = await _store(["qa-x", "QA-X", "Qa-y"])
    assert (await find_run(store, "QA-X")).trace_id == factories[1].trace_id
    assert (await find_run(store, "qa-x")).trace_id == factories[0].trace_id
    assert (await find_run(store, "qa-y")).run_id == "Qa-y"  # one run: case ignored
    with pytest.raises(RunNotFoundError) as raised:  # neither is written this way
        await find_run(store, "Qa-X")
    said = str(raised.value)
    assert "2 runs match 'Qa-X'" in said
    assert f"'qa-x' (trace {factories[0].trace_id})" in said
    assert "name one by its trace id" in said


async def test_one_run_id_over_two_traces_names_both_traces() -> None:
    store, factories = await _store(["again", "again"])
    with pytest.raises(RunNotFoundError) as raised:
        await find_run(store, "again")
    assert all(f.trace_id in str(raised.value) for f in factories)
    assert (await find_run(store, factories[0].trace_id)).trace_id == factories[0].trace_id
