"""The query API's JSON read back by the CLI: what this version knows, whatever else is sent."""

from __future__ import annotations

import pytest

from agentmesh.collector.api.payloads import (
    graph_from_json,
    graph_to_json,
    run_from_json,
    run_to_json,
)
from agentmesh.collector.store.base import RunSummary, StoredGraph
from agentmesh.collector.testing import SpanFactory, graph_of
from agentmesh.core import ConfigError

RUN = RunSummary(
    "t" * 32, "run-1", "research", None, 1, 2, ("a", "b"), 1, 5, 2, 10, 20, 0.5, True, 0,
    paused=True, resumed_from="run-0",
)  # fmt: skip


def test_a_run_round_trips_with_its_pause_and_the_run_it_continues() -> None:
    assert run_from_json(run_to_json(RUN)) == RUN


def test_fields_of_a_newer_collector_are_ignored_and_missing_ones_take_defaults() -> None:
    newer = {**run_to_json(RUN), "added_later": {"x": 1}}
    assert run_from_json(newer) == RUN
    older = {k: v for k, v in run_to_json(RUN).items() if k not in ("paused", "resumed_from")}
    assert (run_from_json(older).paused, run_from_json(older).resumed_from) == (False, None)
    with pytest.raises(ConfigError, match="not a run summary"):
        run_from_json({k: v for k, v in run_to_json(RUN).items() if k != "run_id"})


def test_a_graph_round_trips_and_ignores_unknown_fields() -> None:
    f = SpanFactory()
    root = f.workflow("w", run_id="run-1")
    graph = graph_of([root, f.agent("a", parent=root), f.agent("b", parent=root)])
    agents = sorted(graph.agents.values(), key=lambda a: a.name)
    stored = StoredGraph(RUN, agents, graph.handoffs)
    data = graph_to_json(stored)
    assert graph_from_json(data) == stored
    data["agents"][0]["added_later"] = 1
    data["handoffs"][0]["added_later"] = 2
    assert graph_from_json(data) == stored
