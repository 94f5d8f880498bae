"""``otel-collector.yaml`` is consistent, keeps secrets in the environment, and is documented."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import yaml

from agentmesh.collector.forward import OTEL_TRACES_PATH

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "otel-collector.yaml"
DOC = ROOT / "docs" / "otel-collector.md"

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


def test_memory_limiter_runs_first_then_batch(config: Mapping) -> None:
    traces = _map(_map(_map(config["service"])["pipelines"])["traces"])
    assert _names(traces["processors"]) == ["memory_limiter", "batch"]


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
