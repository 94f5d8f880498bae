"""Environment variables that look like AgentMesh settings but set nothing: typos, old names.

pydantic-settings reads the variables a settings class declares and ignores every other one,
so ``AGENTMESH_COLLECTOR_GRPC_PROT=5000`` starts a collector on the default port without a
word. :func:`unknown_variables` finds such variables for one settings class: under a
component's own prefix (``AGENTMESH_COLLECTOR_``, ``AGENTMESH_LOG_``, ``AGENTMESH_ROUTER_``)
every undeclared name is reported; under the instrumentation's bare ``AGENTMESH_`` prefix,
which the other components' variables share, only a name close to a declared one is (a typo),
and never one of another component or one AgentMesh reads elsewhere. A component's setting
written without its part (``AGENTMESH_GRPC_PORT`` for ``AGENTMESH_COLLECTOR_GRPC_PORT``) is
reported too: no instrumentation setting has a component setting's name (a test keeps it so).

Example:
    >>> found = unknown_variables(
    ...     "AGENTMESH_COLLECTOR_",
    ...     {"AGENTMESH_COLLECTOR_GRPC_PORT", "AGENTMESH_COLLECTOR_HTTP_PORT"},
    ...     {"AGENTMESH_COLLECTOR_GRPC_PROT": "5000", "HOME": "/root"},
    ... )
    >>> [(each.name, each.suggestion) for each in found]
    [('AGENTMESH_COLLECTOR_GRPC_PROT', 'AGENTMESH_COLLECTOR_GRPC_PORT')]
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["COMPONENT_PREFIXES", "OTHER_VARIABLES", "UnknownVariable", "unknown_variables"]

COMPONENT_PREFIXES: Final = ("AGENTMESH_COLLECTOR_", "AGENTMESH_LOG_", "AGENTMESH_ROUTER_")
"""The prefixes of AgentMesh's settings classes besides the instrumentation's ``AGENTMESH_``."""

OTHER_VARIABLES: Final = frozenset(
    {
        "AGENTMESH_API_TOKEN",  # the CLI's token for the collector's query API
        "AGENTMESH_RESUME",  # set by `agentmesh resume` for the resumed app
    }
)
"""Variables with the ``AGENTMESH_`` prefix that AgentMesh reads outside settings classes."""

_BARE: Final = "AGENTMESH_"
"""The instrumentation's prefix, which every other one extends."""

_CLOSE: Final = 0.8
"""How alike (difflib's ratio) a name must be to a declared one to be taken for a typo of it."""


@dataclass(frozen=True, slots=True)
class UnknownVariable:
    """A variable under a settings prefix that no setting reads.

    Attributes:
        name: The variable, as set.
        suggestion: The declared variable it most resembles, when one is close.
    """

    name: str
    suggestion: str | None


def unknown_variables(
    prefix: str, declared: Collection[str], environ: Iterable[str]
) -> list[UnknownVariable]:
    """Find the variables under ``prefix`` that set nothing.

    Args:
        prefix: The settings class's prefix (``AGENTMESH_COLLECTOR_``), any case.
        declared: The variables its fields read, upper case.
        environ: The names of the environment's variables.

    Returns:
        The unknown ones, in name order.
    """
    prefix = prefix.upper()
    component = prefix != _BARE
    others = tuple(p for p in COMPONENT_PREFIXES if p != prefix and p.startswith(prefix))
    names = sorted(environ)
    found: list[UnknownVariable] = []
    for name in names:
        upper = name.upper()  # settings read variables case-insensitively
        if not upper.startswith(prefix) or upper in declared or upper in OTHER_VARIABLES:
            continue
        if upper.startswith(others):  # another component's setting
            continue
        close = difflib.get_close_matches(upper, declared, n=1, cutoff=_CLOSE)
        if close or component:
            found.append(UnknownVariable(name, close[0] if close else None))
    if component:  # the component's part left out: AGENTMESH_GRPC_PORT for the collector's
        missing_part = {f"{_BARE}{name[len(prefix) :]}": name for name in declared}
        found += [
            UnknownVariable(name, missing_part[name.upper()])
            for name in names
            if name.upper() in missing_part
        ]
    return sorted(found, key=lambda unknown: unknown.name)
