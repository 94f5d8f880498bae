"""Public names of a package loaded on first use, so importing the package stays cheap.

A package's ``__init__`` lists its public surface in ``__all__`` and maps each name to the
module that defines it; :func:`lazy_exports` returns the module-level ``__getattr__`` and
``__dir__`` (PEP 562) that import that module when the name is first read, and keep the value
in the package's namespace so later reads are plain attribute lookups. ``from package import
Name`` works the same way. Type checkers read the names from an ``if TYPE_CHECKING:`` block of
the same imports.

Importing a submodule imports its parent packages first, so eager re-exports in a package's
``__init__`` make every import under it pay for the whole package: ``agentmesh --help`` took
2.9 s, nearly all of it importing the collector's receivers, stores and detectors, which the
help text does not need.

Example:
    >>> import types
    >>> package = types.ModuleType("example")
    >>> package.__getattr__, package.__dir__ = lazy_exports(
    ...     vars(package), {"dedent": "textwrap", "sqrt": "math"}
    ... )
    >>> package.sqrt(9.0), "sqrt" in vars(package)
    (3.0, True)
    >>> package.missing
    Traceback (most recent call last):
    ...
    AttributeError: module 'example' has no attribute 'missing'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from importlib import import_module

__all__ = ["lazy_exports"]


def lazy_exports(
    namespace: MutableMapping[str, object], exports: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__`` that load ``exports`` on first use.

    Args:
        namespace: The package's ``globals()``; each value loaded is stored there.
        exports: Public name to the module (absolute name) that defines it.

    Returns:
        ``(__getattr__, __dir__)``, to assign at the package's top level.
    """
    package = str(namespace.get("__name__", "?"))

    def __getattr__(name: str) -> object:  # noqa: N807 - the PEP 562 hook's name
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value: object = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:  # noqa: N807 - the PEP 562 hook's name
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
