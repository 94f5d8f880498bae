"""Settings and arguments that once stopped the app: it must run as it would without AgentMesh.

Each case runs a real interpreter (the launcher's ``exec``, exit hooks and import-time failures
only show in a process of their own).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

_LAUNCHER = str(Path(sys.executable).with_name("agentmesh-instrument"))
_DEAD = "http://127.0.0.1:9"  # nothing listens


def _run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=tmp_path,
        env={**os.environ, "AGENTMESH_ENDPOINT": _DEAD, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _script(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return str(path)


def test_the_apps_own_options_are_never_taken_for_the_launchers(tmp_path: Path) -> None:
    app = _script(tmp_path, "app.py", "import sys; print(sys.argv[1:])\n")
    # --config, --log and --b are prefixes of OpenTelemetry's options (argparse: "ambiguous")
    argv = [_LAUNCHER, "--service_name", "svc", sys.executable, app, "--config", "x", "--log"]
    done = _run([*argv, "--b", "1", "--", "--version"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['--config', 'x', '--log', '--b', '1', '--', '--version']"


def test_a_propagator_that_is_not_installed_leaves_the_app_running(tmp_path: Path) -> None:
    # importing OpenTelemetry raises for it: the launcher and init() used to stop the app
    app = _script(
        tmp_path,
        "app.py",
        """
        import agentmesh.instrumentation as am
        print("init returned", am.init())
        """,
    )
    done = _run([sys.executable, app], tmp_path, OTEL_PROPAGATORS="b3")
    assert (done.returncode, done.stdout.strip()) == (0, "init returned None"), done.stderr
    assert "Propagator b3 not found" in done.stderr  # logged, not raised
    plain = _script(tmp_path, "plain.py", "print('ran')\n")
    done = _run([_LAUNCHER, sys.executable, plain], tmp_path, OTEL_PROPAGATORS="tracecontext,b3")
    assert (done.returncode, done.stdout.strip()) == (0, "ran"), done.stderr
    assert "OTEL_PROPAGATORS names b3, not installed" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_malformed_endpoint_leaves_the_apps_threads_to_finish(tmp_path: Path) -> None:
    # an exit hook of ours that raised made Python skip joining the app's non-daemon threads
    app = _script(
        tmp_path,
        "app.py",
        """
        import threading, time
        import agentmesh.instrumentation as am
        from opentelemetry import trace

        am.init()
        with trace.get_tracer("app").start_as_current_span("work"):
            pass

        def worker():
            time.sleep(0.5)
            print("worker finished", flush=True)

        threading.Thread(target=worker).start()  # not a daemon: Python waits for it
        print("main done", flush=True)
        """,
    )
    done = _run([sys.executable, app], tmp_path, AGENTMESH_ENDPOINT="http://[::1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["main", "done", "worker", "finished"]
    assert "Traceback" not in done.stderr
    # now refused when the settings load (the app runs uninstrumented), named once
    assert done.stderr.count("agentmesh.invalid_configuration") == 1, done.stderr
    assert "AGENTMESH_ENDPOINT" in done.stderr
