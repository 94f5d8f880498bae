"""The public surface, import cost, ``init()`` and the launcher's command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import agentmesh.instrumentation as instrumentation
from agentmesh.instrumentation.launcher import foreign_python, main


def test_public_surface() -> None:
    assert instrumentation.__all__ == [
        "AnthropicInstrumentor",
        "ContextDigest",
        "CrewAIInstrumentor",
        "InstrumentationSettings",
        "LangGraphInstrumentor",
        "OpenAIInstrumentor",
        "agent",
        "context_digest",
        "continue_from",
        "current_run_id",
        "current_task_class",
        "extract_context",
        "init",
        "run_scope",
        "task_class",
        "with_run_id",
        "workflow",
    ]
    for name in instrumentation.__all__:
        assert getattr(instrumentation, name) is not None
    with pytest.raises(AttributeError):
        _ = instrumentation.does_not_exist  # type: ignore[attr-defined]


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_importing_the_instrumentors_imports_no_library() -> None:
    result = _run_python(
        """
        import sys
        import agentmesh.instrumentation as am
        am.OpenAIInstrumentor, am.LangGraphInstrumentor, am.init
        import agentmesh.instrumentation.distro, agentmesh.instrumentation.configurator
        print(sorted(m for m in ("openai", "langgraph", "grpc") if m in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_init_is_idempotent_lazy_and_sets_the_global_provider() -> None:
    result = _run_python(
        """
        import sys
        import agentmesh.instrumentation as am
        from opentelemetry import trace
        first = am.init(service_name="svc")
        assert am.init() is first
        assert trace.get_tracer_provider() is first
        assert first.resource.attributes["service.name"] == "svc"
        assert "langgraph" not in sys.modules  # patched when imported, not before
        import openai, wrapt
        from openai.resources.chat.completions import Completions
        assert isinstance(vars(Completions)["create"], wrapt.FunctionWrapper)
        import langgraph.pregel
        assert isinstance(vars(langgraph.pregel.Pregel)["stream"], wrapt.FunctionWrapper)
        print("ok")
        """,
        AGENTMESH_ENDPOINT=f"http://127.0.0.1:{_closed_port()}",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"  # our logs never go to the app's output
    assert "Traceback" not in result.stderr


def test_init_never_raises_on_a_wrong_setting() -> None:
    result = _run_python(
        """
        import agentmesh.instrumentation as am
        from opentelemetry import trace
        assert am.init() is None
        assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
        print("ran")
        """,
        AGENTMESH_EXPORT_TIMEOUT_S="soon",
    )
    assert result.returncode == 0, result.stderr
    assert "ran" in result.stdout
    assert result.stdout == "ran\n"
    assert "AGENTMESH_EXPORT_TIMEOUT_S='soon'" in result.stderr


def test_init_disabled_does_nothing() -> None:
    result = _run_python(
        """
        import agentmesh.instrumentation as am
        assert am.init() is None
        assert not am.OpenAIInstrumentor().is_instrumented_by_opentelemetry
        print("ran")
        """,
        AGENTMESH_DISABLED="1",
    )
    assert result.returncode == 0, result.stderr


def test_launcher_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])

    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(
        "usage: agentmesh-instrument [--otel_option VALUE ...] COMMAND [ARGS ...]"
    )
    assert "AGENTMESH_ENDPOINT" in out
    assert "AGENTMESH_SHUTDOWN_TIMEOUT_S" in out


def test_launcher_without_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith("usage: agentmesh-instrument")


def test_launcher_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["no-such-program-agentmesh", "x"])

    assert exited.value.code == 127
    assert "command not found: no-such-program-agentmesh" in capsys.readouterr().err


def _script(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_an_interpreter_that_cannot_import_agentmesh_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the base interpreter, isolated: what `python` is when the venv is not activated
    base = getattr(sys, "_base_executable", sys.executable)
    python = _script(tmp_path / "bin", "python3", f'exec "{base}" -I "$@"')
    monkeypatch.setenv("PATH", str(python.parent))
    assert foreign_python("python3") == str(python)


def test_an_interpreter_that_can_import_agentmesh_is_not_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = _script(tmp_path / "bin", "python", f'exec "{sys.executable}" "$@"')
    monkeypatch.setenv("PATH", str(python.parent))
    assert foreign_python("python") is None
    assert foreign_python(sys.executable) is None  # the launcher's own: not even asked


def test_only_python_interpreters_are_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = tmp_path / "asked"
    _script(tmp_path / "bin", "pythonista", f'touch "{asked}"; exit 1')
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert foreign_python("pythonista") is None
    assert not asked.exists()


def test_the_launcher_says_which_interpreter_can_instrument(tmp_path: Path) -> None:
    base = getattr(sys, "_base_executable", sys.executable)
    _script(tmp_path / "bin", "python", f'exec "{base}" -I "$@"')
    launcher = Path(sys.executable).parent / "agentmesh-instrument"
    result = subprocess.run(
        [str(launcher), "python", "-c", "print('ran')"],
        env={**os.environ, "PATH": str(tmp_path / "bin")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n"  # the program runs, as given
    assert "cannot import AgentMesh" in result.stderr
    assert f"run: agentmesh-instrument {sys.executable} -c" in result.stderr
