"""Patches applied when their module is imported, and undone all together.

Instrumenting must not import the instrumented library: an app that never uses LangGraph
should not pay for importing it at start-up. A :class:`PatchSet` therefore registers a wrapt
post-import hook per module; the hook (run at once when the module is already imported) wraps
the targets with ``wrapt.FunctionWrapper``. :meth:`PatchSet.remove` restores every original and
disarms hooks that have not fired yet.

A hook can fire while the library's top-level package is still being imported: openai before
1.7x and anthropic before 0.5x import their ``resources`` modules from their ``__init__``
before binding ``Stream``, so a wrapper built then (which reads ``openai.Stream``) fails with
"partially initialized module". The target is wrapped anyway and its wrapper is built at the
first call instead, when the package is complete (a wrapper that still cannot be built is
logged once and the calls go through unobserved).

Example:
    >>> import json
    >>> patches = PatchSet("demo")
    >>> patches.add("json", "dumps", lambda: lambda wrapped, instance, args, kwargs: "patched")
    >>> patches.apply()
    >>> json.dumps(1)
    'patched'
    >>> patches.remove()
    >>> json.dumps(1)
    '1'
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt

from agentmesh.core.log import get_logger
from agentmesh.instrumentation._failopen import guarded, report

__all__ = ["PatchSet", "Wrapper", "WrapperFactory"]

_log = get_logger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple[Any, ...], dict[str, Any]], Any]
"""A wrapt wrapper: ``(wrapped, instance, args, kwargs) -> result``."""

WrapperFactory = Callable[[], Wrapper]
"""Builds a wrapper when its module is imported (so building it may import the library)."""


class _OwnWrapper(wrapt.FunctionWrapper):  # pyright: ignore[reportUntypedBaseClass, reportMissingTypeArgument]
    """A wrapper applied by a :class:`PatchSet` (ours, whichever instrumentation)."""


@dataclass(frozen=True, slots=True)
class _Target:
    module: str
    path: str
    factory: WrapperFactory
    optional: bool
    stack: bool


@dataclass(frozen=True, slots=True)
class _Applied:
    parent: object
    attribute: str
    original: object
    replacement: object
    owned: bool


class PatchSet:
    """A group of wrapt patches applied lazily (on import) and removed together.

    Args:
        name: Name of the instrumentation, for the logs.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._targets: list[_Target] = []
        self._applied: list[_Applied] = []
        self._lock = threading.Lock()
        self._generation = 0
        self._active = False

    def add(
        self,
        module: str,
        path: str,
        factory: WrapperFactory,
        *,
        optional: bool = False,
        stack: bool = False,
    ) -> None:
        """Declare a patch.

        By default a target someone else wrapped already (a ``wrapt`` wrapper is in place) is
        left alone: we never stack. With ``stack=True`` our wrapper goes over theirs (the
        provider patches, whose one-span rule needs to wrap peers: see
        :mod:`agentmesh.instrumentation._dedupe`); a target wrapped by us is never wrapped twice.

        Args:
            module: Module to wait for, for example ``"openai.resources.chat.completions"``.
            path: Dotted attribute path inside it, for example ``"Completions.create"``.
            factory: Builds the wrapt wrapper, once the module is imported.
            optional: The target may be missing in some versions: do not warn when it is.
            stack: Wrap over another library's ``wrapt`` wrapper.
        """
        self._targets.append(_Target(module, path, factory, optional, stack))

    @property
    def applied_count(self) -> int:
        """Number of patches currently in place."""
        with self._lock:
            return len(self._applied)

    def apply(self) -> None:
        """Arm the patches: each applies when its module is imported (now, if it already is)."""
        with self._lock:
            self._generation += 1
            self._active = True
            generation = self._generation
        for module in dict.fromkeys(t.module for t in self._targets):
            with guarded(f"{self._name}.register_hook"):
                wrapt.register_post_import_hook(self._hook(generation, module), module)

    def _hook(self, generation: int, module_name: str) -> Callable[[ModuleType], None]:
        def hook(module: ModuleType) -> None:
            with guarded(f"{self._name}.patch:{module_name}"):
                self._patch_module(generation, module_name, module)

        return hook

    def _patch_module(self, generation: int, module_name: str, module: ModuleType) -> None:
        with self._lock:
            if not self._active or generation != self._generation:
                return
            for target in self._targets:
                if target.module != module_name:
                    continue
                try:
                    parent, attribute, original = wrapt.resolve_path(module, target.path)
                except (AttributeError, ImportError) as exc:
                    if not target.optional:
                        _log.warning(
                            "agentmesh.patch_target_missing",
                            instrumentation=self._name,
                            target=f"{module_name}.{target.path}",
                            error=str(exc),
                        )
                    continue
                if isinstance(original, _OwnWrapper) or (
                    not target.stack and isinstance(original, wrapt.FunctionWrapper)
                ):
                    continue  # patched already (by us, or someone else and we never stack)
                owned = not isinstance(parent, type) or attribute in vars(parent)
                where = f"{self._name}.patch:{module_name}.{target.path}"
                replacement = _OwnWrapper(original, self._gate(where, target.factory))
                wrapt.apply_patch(parent, attribute, replacement)
                self._applied.append(_Applied(parent, attribute, original, replacement, owned))

    def _gate(self, where: str, factory: WrapperFactory) -> Wrapper:
        # A wrapper someone else stacked on ours keeps ours in the chain after remove():
        # the gate turns it into a pass-through then.
        try:
            built: Wrapper | None = factory()
        except Exception:  # noqa: BLE001 - the package is still importing: build at the first call
            built = None
        broken = False

        def gated(
            wrapped: Callable[..., Any],
            instance: Any,
            args: tuple[Any, ...],
            kwargs: dict[str, Any],
        ) -> Any:
            nonlocal built, broken
            if not self._active or broken:
                return wrapped(*args, **kwargs)
            wrapper = built
            if wrapper is None:
                try:
                    wrapper = built = factory()
                except Exception as exc:  # noqa: BLE001 - fail-open: the call goes through
                    broken = True
                    report(where, exc)
                    return wrapped(*args, **kwargs)
            return wrapper(wrapped, instance, args, kwargs)

        return gated

    def remove(self) -> None:
        """Undo every applied patch and disarm the hooks that have not fired."""
        with self._lock:
            self._active = False
            self._generation += 1
            applied, self._applied = self._applied, []
        for patch in reversed(applied):
            with guarded(f"{self._name}.unpatch"):
                current = _raw_attribute(patch.parent, patch.attribute)
                if current is not patch.replacement:
                    continue  # someone patched over us: leave their wrapper alone
                if patch.owned:
                    setattr(patch.parent, patch.attribute, patch.original)
                else:
                    delattr(patch.parent, patch.attribute)  # the original is inherited


def _raw_attribute(parent: object, attribute: str) -> object:
    if isinstance(parent, type):
        return vars(parent).get(attribute)
    return getattr(parent, attribute, None)
