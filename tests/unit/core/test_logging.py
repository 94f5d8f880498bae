import json

import pytest
import structlog

from agentmesh.core import configure_logging


@pytest.fixture(autouse=True)
def _reset_structlog():
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def test_writes_one_json_object_per_event_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="info", fmt="json", force=True)
    structlog.get_logger("t").info("span batch stored", spans=12)
    structlog.get_logger("t").debug("hidden")
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
    structlog.get_logger("t").warning("dropped")
    assert capsys.readouterr().err == ""
