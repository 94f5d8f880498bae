"""Switch an instrumentation off and on inside one process, by the attributes it replaced.

Comparing a bare process with an instrumented one mixes the instrumentation's cost with
everything that differs between two processes (memory layout, caches, which core's load). On a
shared 2-core machine that difference alone moved a call by ±150 µs, more than the overheads
measured. Comparing within one process removes it, provided "off" really is the bare SDK.

:func:`snapshot` records every function-like attribute of the modules (and the classes they
define) of the instrumented packages. Taken before and after a contender instruments, the
difference is exactly what it patched, whatever library it patches with; :class:`Toggle` puts
either side back with ``setattr``. Every contender here patches class or module attributes
(wrapt), so this is complete for them; the worker checks it by counting spans: a bare call must
emit none.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

PACKAGES = ("openai", "httpx")

Key = tuple[int, str]
Snapshot = dict[Key, tuple[object, str, object]]


def _function_like(value: object) -> bool:
    return callable(value) or isinstance(value, staticmethod | classmethod | property)


def snapshot(packages: tuple[str, ...] = PACKAGES) -> Snapshot:
    """Record the function-like attributes of the packages' modules and of their classes.

    Args:
        packages: Top-level package names.

    Returns:
        ``(id(owner), name)`` to ``(owner, name, value)``.
    """
    found: Snapshot = {}
    for name, module in list(sys.modules.items()):
        if module is None or name.partition(".")[0] not in packages:
            continue
        owners: list[object] = [module]
        owners += [
            value
            for value in list(vars(module).values())
            if isinstance(value, type) and value.__module__ == name
        ]
        for owner in owners:
            for attribute, value in list(vars(owner).items()):
                if _function_like(value):
                    found[(id(owner), attribute)] = (owner, attribute, value)
    return found


@dataclass(frozen=True)
class Patch:
    """One replaced attribute.

    Attributes:
        owner: The module or class holding it.
        name: The attribute's name.
        bare: The value before instrumenting.
        wrapped: The value after.
    """

    owner: object
    name: str
    bare: object
    wrapped: object

    def label(self) -> str:
        """Return ``module.Class.name`` for the report."""
        owner = self.owner
        qualified = getattr(owner, "__qualname__", None) or getattr(owner, "__name__", "?")
        if isinstance(owner, type):
            return f"{owner.__module__}.{qualified}.{self.name}"
        return f"{qualified}.{self.name}"


class Toggle:
    """The difference between two snapshots, applied either way.

    Args:
        before: Snapshot taken before instrumenting.
        after: Snapshot taken after.
    """

    def __init__(self, before: Snapshot, after: Snapshot) -> None:
        self.patches: list[Patch] = []
        for key, (owner, name, value) in after.items():
            old = before.get(key)
            if old is not None:
                if old[2] is not value:
                    self.patches.append(Patch(owner, name, old[2], value))
            elif hasattr(value, "__wrapped__") and not isinstance(value, type):
                # A module imported while instrumenting, its function wrapped at once: the
                # original is the one it wraps. Other new attributes are just that module's.
                self.patches.append(Patch(owner, name, value.__wrapped__, value))
        self.on = True

    def set(self, on: bool) -> None:
        """Install the instrumented (``on``) or the bare attributes."""
        if on == self.on:
            return
        for patch in self.patches:
            setattr(patch.owner, patch.name, patch.wrapped if on else patch.bare)
        self.on = on

    def labels(self) -> list[str]:
        """Return the patched attributes' names, sorted."""
        return sorted(patch.label() for patch in self.patches)
