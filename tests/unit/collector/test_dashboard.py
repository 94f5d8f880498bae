"""The Grafana dashboard charts what the collector's ``/metrics`` exposes, and all of it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agentmesh.collector.detection import Detection
from agentmesh.collector.events import CollectorMetrics
from agentmesh.collector.events.otlp_export import DetectionExporterStats
from agentmesh.collector.events.webhooks import WebhookStats
from agentmesh.collector.forward import ForwarderStats
from agentmesh.collector.receiver.process_usage import PoolUsage
from agentmesh.collector.service import CollectorStats

DASHBOARD = Path(__file__).parents[3] / "dashboards" / "agentmesh-collector.json"
_METRIC = re.compile(r"\b(?:agentmesh|process)_[a-z0-9_]+")
_PROCESS_CHARTED = {"process_resident_memory_bytes", "process_cpu_seconds_total"}
"""Of the process collector's standard metrics, those the dashboard must chart."""
_BY = re.compile(r"\bby \(([^)]*)\) \((?:rate|increase)?\(?(agentmesh_[a-z0-9_]+)")


def _exposed() -> dict[str, set[str]]:
    """Every sample name a collector with every source wired exposes, with its label names."""
    fields: dict[str, object] = dict.fromkeys(CollectorStats.__dataclass_fields__, 1)
    fields["runs_by_workflow"] = {"essay": (1, 1)}
    stats = CollectorStats(**fields)  # pyright: ignore[reportArgumentType]
    metrics = CollectorMetrics(
        stats=lambda: stats,
        ingest_latency_ms=lambda *q: [1.0 for _ in q],
        forward_stats=lambda: {"langsmith": ForwarderStats()},
        exporter=SimpleNamespace(stats=DetectionExporterStats()),  # pyright: ignore[reportArgumentType]
        webhooks=SimpleNamespace(stats=WebhookStats()),  # pyright: ignore[reportArgumentType]
        decode_workers=lambda: PoolUsage(1, 1, 1.0),
    )
    metrics.record(Detection("d", "stuck", "error", "t" * 32, "r", None, (), "x", 1))  # pyright: ignore[reportArgumentType]
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if not sample.name.endswith("_created"):
                found.setdefault(sample.name, set()).update(sample.labels)
    return found


def _panels() -> list[dict[str, Any]]:
    return json.loads(DASHBOARD.read_text())["panels"]


def _exprs() -> list[str]:
    return [t["expr"] for p in _panels() for t in p.get("targets", [])]


def test_every_query_reads_metrics_the_collector_exposes_with_their_labels() -> None:
    exposed = _exposed()
    for expr in _exprs():
        names = _METRIC.findall(expr)
        assert names, expr
        for name in names:
            assert name in exposed, f"{name} is not exposed by the collector ({expr})"
        assert 'instance=~"$instance"' in expr, f"not filtered by the collector chosen: {expr}"
        for labels, name in _BY.findall(expr):
            for label in (part.strip() for part in labels.split(",")):
                assert label in exposed[name] | {"instance"}, f"{name} has no label {label}"


def test_every_exposed_metric_is_charted() -> None:
    charted = {name for expr in _exprs() for name in _METRIC.findall(expr)}
    wanted = {name for name in _exposed() if name.startswith("agentmesh_")} | _PROCESS_CHARTED
    missing = wanted - charted
    assert not missing, f"metrics the dashboard does not chart: {sorted(missing)}"


def test_panels_are_laid_out_on_the_grid_without_overlap() -> None:
    panels = _panels()
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
        if panel["type"] != "row":
            assert panel["description"], panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
