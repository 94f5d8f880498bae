"""LangGraph's serializer, reading back only the classes it is allowed to rebuild.

LangGraph's ``JsonPlusSerializer`` stores a value it has no MessagePack type for as the name of
a callable and its arguments (``("uuid", "UUID", "…")``), and on load imports that module and
calls it. Its default load calls whatever a stored payload names (LangGraph only warns): anyone
who can write to the checkpoint store can make every app that reads the thread run
``os.system``, no pickle needed. :class:`StrictJsonPlusSerializer` writes exactly what
``JsonPlusSerializer`` writes (so checkpoints stay readable by the official savers and theirs by
ours) and, on load, rebuilds a class only when it is allowed:

- the standard types LangGraph itself writes (datetimes, UUIDs, decimals, sets, deques, paths,
  IP addresses, zones, compiled patterns);
- classes of ``langchain_core``, ``langgraph``, ``crewai`` and ``pydantic`` (LangChain
  messages, ``Send``, ``SecretStr``…) and of the modules you add (``allowed_modules``: a module
  allows its submodules);
- exact classes you add (``allowed_classes``), and the state types LangGraph passes itself
  when ``LANGGRAPH_STRICT_MSGPACK`` is set.

Anything else loads as the data it was stored with (an enum as its value, a dataclass or model
as a dict of its fields), with one warning per class naming how to allow it. Nothing is
imported or called for a class that is not allowed.

Example:
    >>> import enum
    >>> Colour = enum.Enum("Colour", {"RED": "red"}, module="myapp.state")
    >>> serde = StrictJsonPlusSerializer()
    >>> stored = serde.dumps_typed({"colour": Colour.RED})
    >>> serde.loads_typed(stored)  # myapp is not allowed: the value, not the enum
    {'colour': 'red'}
    >>> import sys, types
    >>> sys.modules["myapp.state"] = types.ModuleType("myapp.state")
    >>> sys.modules["myapp.state"].Colour = Colour
    >>> StrictJsonPlusSerializer(allowed_modules=["myapp"]).loads_typed(stored)
    {'colour': <Colour.RED: 'red'>}
    >>> del sys.modules["myapp.state"]
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Collection, Iterable
from datetime import date, datetime, time
from typing import Any, Final, cast

import ormsgpack
from langgraph.checkpoint.serde import jsonplus
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from agentmesh.checkpoint.serde import allowed_module_list, module_allowed
from agentmesh.core.log import get_logger

__all__ = ["StrictJsonPlusSerializer"]

_log = get_logger(__name__)

_SINGLE_ARG: Final = 0
_POS_ARGS: Final = 1
_KW_ARGS: Final = 2
_METHOD_SINGLE_ARG: Final = 3
_PYDANTIC_V1: Final = 4
_PYDANTIC_V2: Final = 5
_NUMPY_ARRAY: Final = 6
_DELTA_SNAPSHOT: Final = 7
_CONSTRUCTORS: Final = frozenset({_SINGLE_ARG, _POS_ARGS, _KW_ARGS, _PYDANTIC_V1, _PYDANTIC_V2})

_STANDARD: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        ("datetime", "datetime"),
        ("datetime", "date"),
        ("datetime", "time"),
        ("datetime", "timedelta"),
        ("datetime", "timezone"),
        ("uuid", "UUID"),
        ("decimal", "Decimal"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("collections", "deque"),
        ("ipaddress", "IPv4Address"),
        ("ipaddress", "IPv4Interface"),
        ("ipaddress", "IPv4Network"),
        ("ipaddress", "IPv6Address"),
        ("ipaddress", "IPv6Interface"),
        ("ipaddress", "IPv6Network"),
        ("pathlib", "Path"),
        ("pathlib", "PosixPath"),
        ("pathlib", "WindowsPath"),
        ("pathlib._local", "Path"),
        ("pathlib._local", "PosixPath"),
        ("pathlib._local", "WindowsPath"),
        ("zoneinfo", "ZoneInfo"),
        ("re", "compile"),
    }
)
"""What LangGraph's encoder writes for standard types: always rebuilt."""

_FROM_ISOFORMAT: Final = (datetime, date, time)
"""Classes whose ``fromisoformat`` a payload may call (an allowed subclass of one, too)."""


def _is_data_class(target: object) -> bool:
    """A class a payload may construct: not a function, not an exception, not a metaclass."""
    return isinstance(target, type) and not issubclass(target, BaseException | type)


class StrictJsonPlusSerializer(JsonPlusSerializer):
    """LangGraph's ``JsonPlusSerializer`` that rebuilds only allowed classes on load.

    Never unpickles (no pickle fallback). Writes what ``JsonPlusSerializer`` writes.

    Args:
        allowed_modules: Modules whose classes are rebuilt, in addition to
            :data:`~agentmesh.checkpoint.serde.DEFAULT_ALLOWED_MODULES`; a module allows its
            submodules (``"myapp"`` allows ``myapp.state``).
        allowed_classes: Exact classes to rebuild, as classes or ``(module, name)`` pairs.
    """

    def __init__(
        self,
        allowed_modules: Iterable[str] = (),
        *,
        allowed_classes: Iterable[tuple[str, ...] | type] = (),
    ) -> None:
        super().__init__(pickle_fallback=False, __unpack_ext_hook__=self._ext_hook)
        self._modules = allowed_module_list(allowed_modules)
        self._classes: frozenset[tuple[str, str]] = frozenset(
            (item.__module__, item.__name__)
            if isinstance(item, type)
            else (item[0], ".".join(item[1:]))
            for item in allowed_classes
        )
        self._resolved: dict[tuple[str, str], Any] = {}
        self._refused: set[tuple[str, str]] = set()
        self._numpy = JsonPlusSerializer(pickle_fallback=False)

    @property
    def allowed_modules(self) -> tuple[str, ...]:
        """The modules whose classes are rebuilt (defaults included)."""
        return self._modules

    def with_msgpack_allowlist(
        self, extra_allowlist: Iterable[tuple[str, ...] | type]
    ) -> StrictJsonPlusSerializer:
        """A copy that also rebuilds these exact classes (LangGraph passes a graph's state types).

        Args:
            extra_allowlist: Classes, or ``(module, name)`` pairs.

        Returns:
            A new serializer; this one is unchanged.
        """
        extra = list(extra_allowlist)
        if not extra:
            return self
        return StrictJsonPlusSerializer(self._modules, allowed_classes=[*self._classes, *extra])

    def _allowed(self, module: str, name: str) -> bool:
        return (
            (module, name) in _STANDARD
            or (module, name) in self._classes
            or module_allowed(module, self._modules)
        )

    def _class(self, module: str, name: str) -> Any:
        """The allowed callable a payload names, else ``None`` (warned once per name)."""
        key = (module, name)
        found = self._resolved.get(key)
        if found is not None:
            return found
        if not self._allowed(module, name):
            return self._refuse(key, f"module {module!r} is not allowed")
        try:
            target: Any = sys.modules.get(module) or importlib.import_module(module)
            for part in name.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            return self._refuse(key, f"it cannot be found ({exc})")
        if key not in _STANDARD and not _is_data_class(target):
            return self._refuse(key, "it is not a data class")
        self._resolved[key] = target
        return target

    def _refuse(self, key: tuple[str, str], why: str) -> None:
        if key not in self._refused:
            self._refused.add(key)
            _log.warning(
                "agentmesh.checkpoint.class_not_rebuilt",
                name=".".join(key),
                reason=why,
                loaded_as="its stored data",
                allow_with=f"StrictJsonPlusSerializer(allowed_modules=[{key[0]!r}])",
            )
        return None

    def _unpack(self, data: bytes) -> Any:
        return ormsgpack.unpackb(data, ext_hook=self._ext_hook, option=ormsgpack.OPT_NON_STR_KEYS)

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code in _CONSTRUCTORS:
            return self._construct(code, self._unpack(data))
        if code == _METHOD_SINGLE_ARG:
            module, name, arg, method = self._unpack(data)
            cls = self._class(module, name)
            if cls is None or method != "fromisoformat" or not issubclass(cls, _FROM_ISOFORMAT):
                return arg
            return cls.fromisoformat(arg)
        if code == _NUMPY_ARRAY:  # dtype, shape, order and bytes: no class a payload names
            packed = ormsgpack.packb(ormsgpack.Ext(code, data))
            return self._numpy.loads_typed(("msgpack", packed))
        if code == _DELTA_SNAPSHOT:
            delta: Callable[[Any], Any] | None = getattr(jsonplus, "_DeltaSnapshot", None)
            return None if delta is None else delta(self._unpack(data))
        self._refuse(("msgpack extension", str(code)), "LangGraph wrote no such extension")
        return None

    def _construct(self, code: int, stored: Collection[Any]) -> Any:
        module, name, payload = cast("tuple[str, str, Any]", tuple(stored)[:3])
        cls = self._class(module, name)
        if cls is None:
            return payload
        try:
            if code == _SINGLE_ARG:
                return cls(payload)
            if code == _POS_ARGS:
                if (module, name) == ("langgraph.types", "Send") and len(payload) == 3:
                    return cls(payload[0], payload[1], timeout=payload[2])
                return cls(*payload)
            if code == _KW_ARGS:
                return cls(**payload)
            try:
                return cls(**payload)
            except Exception:  # noqa: BLE001 - a model's validation may raise anything
                fallback = "model_construct" if code == _PYDANTIC_V2 else "construct"
                return getattr(cls, fallback)(**payload)
        except Exception as exc:  # noqa: BLE001 - as LangGraph: the stored data, not a crash
            self._refuse((module, name), f"rebuilding failed: {exc}")
            return payload
