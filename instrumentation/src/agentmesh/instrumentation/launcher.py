"""``agentmesh-instrument``: run an unmodified Python program with AgentMesh instrumentation.

::

    agentmesh-instrument python app.py --its --own args

It selects the AgentMesh distro and configurator (``OTEL_PYTHON_DISTRO=agentmesh``,
``OTEL_PYTHON_CONFIGURATOR=agentmesh``, unless already set) and hands over to OpenTelemetry's
``opentelemetry-instrument`` runner, which puts its ``sitecustomize`` first on ``PYTHONPATH``
and ``exec``s the command. In the new interpreter, ``sitecustomize`` loads the distro, then the
configurator (which sets up the tracer provider), then every ``opentelemetry_instrumentor``
entry point (the AgentMesh ones included) before the program's first line runs.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Final

from opentelemetry.instrumentation.auto_instrumentation import (  # pyright: ignore[reportMissingTypeStubs]
    run,  # pyright: ignore[reportUnknownVariableType]
)
from opentelemetry.instrumentation.environment_variables import (  # pyright: ignore[reportMissingTypeStubs]
    OTEL_PYTHON_CONFIGURATOR,
    OTEL_PYTHON_DISTRO,
)

from agentmesh.instrumentation._entry_points import CONFIGURATOR_NAME, DISTRO_NAME

__all__ = ["PROG", "main", "usage"]

PROG: Final = "agentmesh-instrument"
_HELP_FLAGS: Final = frozenset({"-h", "--help"})
_EXIT_USAGE: Final = 2
_EXIT_NOT_FOUND: Final = 127


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


def _first_command(args: list[str]) -> str | None:
    for arg in args:
        if not arg.startswith("-"):
            return arg
        if "=" not in arg:
            return None  # an option taking a value: leave the parsing to OpenTelemetry
    return None


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
    command = _first_command(args)
    if command is not None and shutil.which(command) is None:
        print(f"{PROG}: command not found: {command}", file=sys.stderr)  # noqa: T201
        raise SystemExit(_EXIT_NOT_FOUND)
    os.environ.setdefault(OTEL_PYTHON_DISTRO, DISTRO_NAME)
    os.environ.setdefault(OTEL_PYTHON_CONFIGURATOR, CONFIGURATOR_NAME)
    sys.argv = [PROG, *args]
    run()
