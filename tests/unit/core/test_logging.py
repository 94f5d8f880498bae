import json
import logging

import pytest
import structlog

from agentmesh.core import configure_logging, get_logger


def test_configured_writes_one_json_object_per_event_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(level="info", fmt="json", force=True)
    get_logger("agentmesh.t").info("span batch stored", spans=12)
    get_logger("agentmesh.t").debug("hidden")
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [json.loads(line) for line in captured.err.splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"] == "span batch stored"
    assert lines[0]["spans"] == 12
    assert lines[0]["level"] == "info"
    assert "timestamp" in lines[0]


def test_leaves_an_existing_configuration_alone(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="error", fmt="json", force=True)
    configure_logging(level="debug", fmt="console")
    get_logger("agentmesh.t").warning("dropped")
    assert capsys.readouterr().err == ""


def test_unconfigured_goes_through_the_standard_logging_module(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not structlog.is_configured()
    with caplog.at_level(logging.INFO, logger="agentmesh"):
        get_logger("agentmesh.collector.x").bind(run="r1").info("graph updated", agents=2)
        get_logger("agentmesh.collector.x").debug("not enabled")
    assert capsys.readouterr().out == ""  # never on the application's standard output
    [record] = caplog.records
    assert record.name == "agentmesh.collector.x"
    assert record.levelno == logging.INFO
    payload = json.loads(record.getMessage())
    assert payload["event"] == "graph updated"
    assert payload["agents"] == 2
    assert payload["run"] == "r1"


def test_exception_carries_the_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="agentmesh"):
        try:
            raise ValueError("boom")
        except ValueError:
            get_logger("agentmesh.t").exception("export failed")
    payload = json.loads(caplog.records[0].getMessage())
    assert "ValueError: boom" in payload["exception"]
