"""``agentmesh-instrument``: run an unmodified Python program with AgentMesh instrumentation.

::

    agentmesh-instrument python app.py --its --own args

It selects the AgentMesh distro and configurator (``OTEL_PYTHON_DISTRO=agentmesh``,
``OTEL_PYTHON_CONFIGURATOR=agentmesh``, unless already set) and hands over to OpenTelemetry's
``opentelemetry-instrument`` runner, which puts its ``sitecustomize`` first on ``PYTHONPATH``
and ``exec``s the command. In the new interpreter, ``sitecustomize`` loads the distro, then the
configurator (which sets up the tracer provider), then every ``opentelemetry_instrumentor``
entry point (the AgentMesh ones included) before the program's first line runs.

That only works when the command's interpreter has AgentMesh installed. ``python`` found on
``PATH`` is often another one (a venv that is not activated, a launcher installed with pipx):
its ``sitecustomize`` then fails with CPython's bare ``Error in sitecustomize …
No module named 'opentelemetry'`` and the program runs unobserved. When the command is a
Python interpreter outside this launcher's own ``bin`` directory, the launcher asks it (one
short subprocess) whether it can import AgentMesh and, if not, says so and which interpreter
can; the program still runs as given.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

from opentelemetry.instrumentation.environment_variables import (  # pyright: ignore[reportMissingTypeStubs]
    OTEL_PYTHON_CONFIGURATOR,
    OTEL_PYTHON_DISTRO,
)

from agentmesh.instrumentation._entry_points import CONFIGURATOR_NAME, DISTRO_NAME

__all__ = ["PROG", "foreign_python", "main", "usage"]

PROG: Final = "agentmesh-instrument"
_HELP_FLAGS: Final = frozenset({"-h", "--help"})
_FLAGS: Final = _HELP_FLAGS | {"--version"}
"""OpenTelemetry's options that take no value."""
_EXIT_USAGE: Final = 2
_EXIT_NOT_FOUND: Final = 127
_PYTHON: Final = re.compile(r"python(\d+(\.\d+)?)?")
_PROBE: Final = (
    "import importlib.util, sys; "
    "sys.exit(importlib.util.find_spec('agentmesh.instrumentation') is None)"
)
_PROBE_TIMEOUT_S: Final = 10.0


def usage() -> str:
    """Return the help text of the launcher.

    Returns:
        The usage line, an example, and the settings it reads.
    """
    from agentmesh.instrumentation.settings import InstrumentationSettings

    settings = "\n".join(
        f"  {InstrumentationSettings.env_var(name):<30} {field.description}"
        for name, field in InstrumentationSettings.model_fields.items()
    )
    return (
        f"usage: {PROG} [--otel_option VALUE ...] COMMAND [ARGS ...]\n"
        "\n"
        "Run COMMAND (for example `python app.py`) with AgentMesh instrumentation: spans for\n"
        "LLM calls and agent steps are exported over OTLP/gRPC. The program runs unchanged,\n"
        "even when the collector is down.\n"
        "\n"
        f"example: {PROG} python app.py --its-own-flag\n"
        "\n"
        "settings (environment variables):\n"
        f"{settings}\n"
        "\n"
        "OpenTelemetry options (--service_name, --traces_exporter, ...) are accepted too:\n"
        f"see `{PROG} --otel-help`."
    )


def _command_at(args: list[str]) -> int | None:
    """Where the command starts in the launcher's arguments, after OpenTelemetry's options.

    Every OpenTelemetry option takes a value (``--service_name x`` or ``--service_name=x``);
    ``--version`` and the help flags take none.
    """
    at = 0
    while at < len(args):
        arg = args[at]
        if arg == "--":
            return at + 1 if at + 1 < len(args) else None
        if not arg.startswith("-"):
            return at
        at += 1 if "=" in arg or arg in _FLAGS else 2
    return None


def foreign_python(command: str) -> str | None:
    """The interpreter ``command`` runs when it cannot import AgentMesh, else ``None``.

    Only a command named like a Python interpreter (``python``, ``python3``, ``python3.12``)
    found outside this launcher's ``bin`` directory is asked; any doubt (no answer, a timeout)
    counts as able.

    Args:
        command: The program the launcher is to run, as given.

    Returns:
        The interpreter's path, or ``None``.
    """
    path = shutil.which(command)
    if path is None or _PYTHON.fullmatch(Path(path).name) is None:
        return None
    if Path(path).parent == Path(sys.executable).parent:
        return None
    try:
        done = subprocess.run(  # noqa: S603 - the user's own command, with a fixed probe
            [path, "-c", _PROBE], capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return path if done.returncode != 0 else None


def _check_command(args: list[str], command: str) -> None:
    """Stop when ``command`` is not found; warn when its interpreter cannot import AgentMesh."""
    found = shutil.which(command)
    if found is None:
        print(f"{PROG}: command not found: {command}", file=sys.stderr)  # noqa: T201
        raise SystemExit(_EXIT_NOT_FOUND)
    foreign = foreign_python(found)  # a path: no second search of PATH
    if foreign is None:
        return
    at = args.index(command)
    instead = shlex.join([PROG, *args[:at], sys.executable, *args[at + 1 :]])
    print(  # noqa: T201
        f"{PROG}: `{command}` is {foreign}, which cannot import AgentMesh (installed for "
        f"{sys.executable}): the program runs without instrumentation. Activate that "
        f"environment, or run: {instead}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the launcher.

    Args:
        argv: Arguments after the program name; ``sys.argv[1:]`` by default.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in _HELP_FLAGS:
        print(usage(), file=sys.stdout if args else sys.stderr)
        raise SystemExit(0 if args else _EXIT_USAGE)
    if args[0] == "--otel-help":
        args[0] = "--help"
    at = _command_at(args)
    program = args[at:] if at is not None else []
    if at is not None:
        _check_command(args, args[at])
        # "--" before the command: argparse would otherwise read the app's own options as
        # abbreviations of OpenTelemetry's (`--config x` "ambiguous") and refuse to start it
        args = [*(a for a in args[:at] if a != "--"), "--", *program]
    missing = _missing_propagators()
    if missing:  # OpenTelemetry cannot even be imported: run the program as it is
        print(  # noqa: T201
            f"{PROG}: OTEL_PROPAGATORS names {', '.join(missing)}, not installed (a "
            "misspelling, or a missing opentelemetry-propagator-* package): OpenTelemetry "
            "cannot start, so the program runs without instrumentation",
            file=sys.stderr,
        )
        if not program:
            raise SystemExit(_EXIT_USAGE)
        os.execvp(program[0], program)  # noqa: S606 - the user's own command
    os.environ.setdefault(OTEL_PYTHON_DISTRO, DISTRO_NAME)
    os.environ.setdefault(OTEL_PYTHON_CONFIGURATOR, CONFIGURATOR_NAME)
    sys.argv = [PROG, *args]
    # imported here: importing it reads OTEL_PROPAGATORS, and raises for a name not installed
    from opentelemetry.instrumentation.auto_instrumentation import (  # pyright: ignore[reportMissingTypeStubs]
        run,  # pyright: ignore[reportUnknownVariableType]
    )

    run()


def _missing_propagators() -> list[str]:
    """The names in ``OTEL_PROPAGATORS`` that no installed package provides."""
    from importlib.metadata import entry_points

    names = [n.strip() for n in os.environ.get("OTEL_PROPAGATORS", "").split(",") if n.strip()]
    if not names or any(n.lower() == "none" for n in names):
        return []
    installed = {point.name for point in entry_points(group="opentelemetry_propagator")}
    return [n for n in names if n not in installed]
