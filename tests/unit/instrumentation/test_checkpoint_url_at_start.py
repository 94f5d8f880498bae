"""A handoff checkpoint store URL no store can use is said at start; the app stays instrumented.

It used to be said only at the first handoff, by the writer's thread, under another event
(``handoff_checkpoint_store_unusable``), while the troubleshooting page promised
``agentmesh.invalid_configuration`` at start. Now ``init()`` (and the zero-code configurator)
check the URL without opening anything: a wrong one is logged once as
``agentmesh.invalid_configuration`` naming ``AGENTMESH_CHECKPOINT_URL`` (password masked), and
handoff checkpoints are off, while spans are exported as usual.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.trace import INVALID_SPAN
from structlog.testing import capture_logs

from agentmesh.checkpoint.store.factory import open_store
from agentmesh.core import ConfigError
from agentmesh.instrumentation import settings as settings_module
from agentmesh.instrumentation.checkpoints import (
    check_checkpoint_url,
    checkpoint_handoff,
    checkpoint_url_problem,
    handoff_writer,
    reset_handoff_writer,
)

_VAR = "AGENTMESH_CHECKPOINT_URL"

USABLE = [
    "memory://",
    "duckdb:///var/lib/app/checkpoints.duckdb",
    "duckdb://relative/checkpoints.duckdb",
    "redis://127.0.0.1:6379/0",
    "REDIS://cache/1",
    "rediss://:s3cret@cache.internal:6380/2?prefix=team:a",
    "postgresql://app@db.internal/agentmesh?schema=team_a",
    "postgres://app:s3cret@db.internal:5432/agentmesh",
]

UNUSABLE: dict[str, str] = {
    "redis://h:1/abc": "the database must be a number, like redis://host:6379/0",
    "redis://cache:port/0": "not a valid URL",
    "mysql://db/app": "expected memory://, duckdb:///path/file.duckdb, redis://host:6379/0 or "
    "postgresql://user@host/db (not mysql://)",
    "/var/lib/app/checkpoints.duckdb": "expected memory://",
    "duckdb://": "a duckdb:// URL names the file",
    "postgresql://app@db.internal:port/agentmesh": "the port must be a number from 1 to 65535",
}


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(_VAR, raising=False)
    monkeypatch.setattr(
        settings_module, "_reported", set[str]()
    )  # nothing said yet in this process
    reset_handoff_writer()
    yield
    reset_handoff_writer()


@pytest.mark.parametrize("url", USABLE)
def test_a_url_a_store_takes_passes_the_check(url: str) -> None:
    assert checkpoint_url_problem(url) is None
    open_store(url)  # the stores agree: made (not opened) without a ConfigError


@pytest.mark.parametrize(("url", "said"), UNUSABLE.items())
def test_a_url_no_store_takes_is_refused_in_words(url: str, said: str) -> None:
    problem = checkpoint_url_problem(url)
    assert problem is not None
    assert said in problem
    with pytest.raises(ConfigError):  # the stores agree
        open_store(url)


def test_a_wrong_url_is_said_at_start_and_the_first_handoff_says_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "redis://app:s3cret@127.0.0.1:1/abc"
    monkeypatch.setenv(_VAR, url)
    with capture_logs() as logs:
        assert check_checkpoint_url(url) is False
        assert handoff_writer() is None  # off: no writer, no thread
        attributes = checkpoint_handoff(
            INVALID_SPAN, "run-1", {"q": 1}, source="a", target="b", digest="sha256:x"
        )
    assert attributes == {}
    said = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert [e["event"] for e in said] == ["agentmesh.invalid_configuration"], said
    assert said[0]["error"] == (
        "invalid configuration: AGENTMESH_CHECKPOINT_URL='redis://app:***@127.0.0.1:1/abc': "
        "the database must be a number, like redis://host:6379/0"
    )
    assert said[0]["action"] == "handoff checkpoints off; still instrumenting"
    assert "s3cret" not in json.dumps(logs)


def test_without_init_the_first_handoff_says_the_same_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(_VAR, "redis://127.0.0.1:1/abc")
    with capture_logs() as logs:
        assert handoff_writer() is None
        assert handoff_writer() is None
    said = [e for e in logs if e["log_level"] in ("warning", "error")]
    assert [e["event"] for e in said] == ["agentmesh.invalid_configuration"], said
    assert "AGENTMESH_CHECKPOINT_URL='redis://127.0.0.1:1/abc'" in str(said[0]["error"])


def test_a_usable_url_passes_quietly_and_the_writer_comes_at_the_first_handoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(_VAR, "memory://")
    with capture_logs() as logs:
        assert check_checkpoint_url("memory://") is True
        assert check_checkpoint_url(None) is True
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []
    writer = handoff_writer()
    assert writer is not None
    assert writer.kind == "memory"


def test_init_says_both_at_start_and_the_app_is_instrumented(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent(
            """
            import agentmesh.instrumentation as am
            print("instrumented", am.init() is not None, flush=True)
            """
        )
    )
    env = {
        **os.environ,
        "AGENTMESH_ENDPOINT": "http://127.0.0.1:9",  # nothing listens
        "AGENTMESH_CHECKPOINT_URL": "redis://127.0.0.1:1/abc",
        "AGENTMESH_LOG_LEVEL": "loud",
    }
    done = subprocess.run(
        [sys.executable, str(app)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "instrumented True"), done.stderr
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    errors = [e for e in events if e["event"] == "agentmesh.invalid_configuration"]
    assert len(errors) == 2, done.stderr
    assert any("AGENTMESH_LOG_LEVEL='loud'" in e["error"] for e in errors)
    assert any("AGENTMESH_CHECKPOINT_URL='redis://127.0.0.1:1/abc'" in e["error"] for e in errors)
    assert all("still instrumenting" in e["action"] for e in errors)
    assert "Traceback" not in done.stderr
