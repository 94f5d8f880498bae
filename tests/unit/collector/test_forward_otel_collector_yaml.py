"""``otel-collector.yaml`` is consistent, keeps secrets in the environment, and is documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import yaml

from agentmesh.collector.forward import OTEL_TRACES_PATH
from agentmesh.instrumentation._markers import MARKER_NAME

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "otel-collector.yaml"
DOC = ROOT / "docs" / "otel-collector.md"

AGENTMESH_EXPORTER = "loadbalancing/agentmesh"
SAAS_EXPORTERS = frozenset({"otlphttp/langsmith", "otlphttp/braintrust"})
MARKER_CONDITION = f'name == "{MARKER_NAME}"'

ENV_REF = re.compile(r"\$\{env:[A-Z_][A-Z0-9_]*\}")
SECRET_NAME = re.compile(r"api[_-]?key|token|password|secret|authorization|credential", re.I)

Mapping = dict[str, object]


@pytest.fixture(scope="module")
def config() -> Mapping:
    return _map(yaml.safe_load(CONFIG.read_text(encoding="utf-8")))


def _map(node: object) -> Mapping:
    assert isinstance(node, dict)
    return cast(Mapping, node)


def _names(node: object) -> list[str]:
    assert isinstance(node, list)
    return [str(item) for item in cast(list[object], node)]


def _walk(node: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    if isinstance(node, dict):
        for key, value in cast(Mapping, node).items():
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for item in cast(list[object], node):
            yield from _walk(item, path)
    else:
        yield path, node


def test_pipelines_reference_defined_components(config: Mapping) -> None:
    service = _map(config["service"])
    pipelines = _map(service["pipelines"])
    assert pipelines
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        for kind, names in used.items():
            for component in _names(_map(pipeline).get(kind, [])):
                assert component in _map(config[kind]), f"{name}: undefined {kind} {component}"
                names.add(component)
    for kind, names in used.items():
        assert names == set(_map(config[kind])), f"defined but unused {kind}"
    assert set(_names(service["extensions"])) == set(_map(config["extensions"]))


def _pipelines(config: Mapping) -> dict[str, Mapping]:
    pipelines = _map(_map(config["service"])["pipelines"])
    return {name: _map(pipeline) for name, pipeline in pipelines.items()}


def _marker_filters(config: Mapping) -> set[str]:
    """Names of the filter processors that drop spans named like a start marker."""
    found: set[str] = set()
    for name, body in _map(config["processors"]).items():
        if name.split("/")[0] != "filter":
            continue
        spans = _names(_map(_map(body)["traces"])["span"])
        if MARKER_CONDITION in spans:
            found.add(name)
    return found


def test_memory_limiter_runs_first_then_batch(config: Mapping) -> None:
    for name, pipeline in _pipelines(config).items():
        processors = _names(pipeline["processors"])
        assert processors[0] == "memory_limiter", name
        assert processors[-1] == "batch", name


def test_every_exporter_gets_spans_from_the_otlp_receiver_once(config: Mapping) -> None:
    seen: list[str] = []
    for name, pipeline in _pipelines(config).items():
        assert name.split("/")[0] == "traces"
        assert _names(pipeline["receivers"]) == ["otlp"]
        seen.extend(_names(pipeline["exporters"]))
    assert sorted(seen) == sorted({AGENTMESH_EXPORTER, *SAAS_EXPORTERS})


def test_start_markers_are_dropped_for_saas_and_kept_for_agentmesh(config: Mapping) -> None:
    filters = _marker_filters(config)
    assert filters, "no filter processor drops agentmesh.step.start spans"
    for body in (_map(config["processors"])[f] for f in filters):
        assert _map(body)["error_mode"] == "ignore"  # a bad condition never drops a batch
    for name, pipeline in _pipelines(config).items():
        exporters = set(_names(pipeline["exporters"]))
        processors = set(_names(pipeline["processors"]))
        if AGENTMESH_EXPORTER in exporters:
            assert not processors & filters, f"{name} drops markers on the way to AgentMesh"
            assert not exporters & SAAS_EXPORTERS, f"{name} mixes AgentMesh and SaaS exporters"
        else:
            assert exporters <= SAAS_EXPORTERS
            assert processors & filters, f"{name} sends start markers to {sorted(exporters)}"


def test_every_secret_comes_from_the_environment(config: Mapping) -> None:
    headers = 0
    for path, value in _walk(config):
        if "headers" in path or SECRET_NAME.search(path[-1]):
            headers += "headers" in path
            assert isinstance(value, str), path
            where = ".".join(path)
            assert ENV_REF.search(value), f"{where} is not an ${{env:…}} reference"
            assert ENV_REF.sub("", value).strip() in ("", "Bearer"), f"{where} has a literal"
    assert headers == 4


def test_trace_ids_route_to_agentmesh_and_saas_paths_match(config: Mapping) -> None:
    exporters = _map(config["exporters"])
    assert _map(exporters["loadbalancing/agentmesh"])["routing_key"] == "traceID"
    for name in ("otlphttp/langsmith", "otlphttp/braintrust"):
        endpoint = str(_map(exporters[name])["endpoint"])
        assert (endpoint + "/v1/traces").endswith(OTEL_TRACES_PATH)  # otlphttp appends it


def test_every_key_is_explained(config: Mapping) -> None:
    doc = DOC.read_text(encoding="utf-8")
    keys = {part for path, _ in _walk(config) for part in path}
    missing = sorted(key for key in keys if f"`{key}:" not in doc)  # a row starts `key: …`
    assert not missing, f"docs/otel-collector.md does not explain {missing}"
