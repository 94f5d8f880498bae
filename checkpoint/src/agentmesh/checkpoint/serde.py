"""A serializer that never unpickles: :class:`SafeSerializer`.

It has the shape of LangGraph's ``SerializerProtocol`` (``dumps_typed`` / ``loads_typed``)
without importing LangGraph, and writes MessagePack (through ``ormsgpack``) with extension
types for what MessagePack lacks: tuples, sets, datetimes, UUIDs, decimals, enums,
dataclasses, named tuples, Pydantic v2 models (LangChain messages among them), dictionaries with
non-string keys.

Loading never runs code chosen by the payload. A payload tagged ``"pickle"`` (or with any tag
it does not know) is refused with :class:`~agentmesh.core.CheckpointSerdeError`, and a class
is rebuilt only when its module is allowed: ``langchain_core``, ``langgraph``, ``crewai`` and
``pydantic`` by default, plus the modules (or exact classes) you register. Any other class
loads as a plain dict of its fields (an enum member as its value) with a warning, or raises
with ``strict=True``. Models and dataclasses are rebuilt from their fields by name, so a field
added later with a default loads from old payloads, and fields the class no longer has are
dropped.

Dumping an object it cannot encode raises :class:`~agentmesh.core.CheckpointSerdeError` naming
the type; it never falls back to pickle. Exceptions are stored as their ``repr`` (as LangGraph
does). Instances of other classes from allowed modules (LangGraph's ``Send``, say) are stored
by their attributes and rebuilt without calling ``__init__``.

Example:
    >>> from datetime import datetime, timezone
    >>> from langchain_core.messages import AIMessage, HumanMessage
    >>> serde = SafeSerializer()
    >>> state = {
    ...     "messages": [HumanMessage("hi"), AIMessage("hello", id="m2")],
    ...     "seen": {1: datetime(2025, 1, 1, tzinfo=timezone.utc)},
    ... }
    >>> type_tag, data = serde.dumps_typed(state)
    >>> type_tag
    'msgpack'
    >>> serde.loads_typed((type_tag, data)) == state
    True
    >>> serde.loads_typed(("pickle", b"..."))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    agentmesh.core.errors.CheckpointSerdeError: refusing to unpickle a checkpoint payload...
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import pathlib
import sys
from collections import deque
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Final, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import ormsgpack
from pydantic import BaseModel, RootModel

from agentmesh.core.errors import CheckpointSerdeError
from agentmesh.core.log import get_logger

__all__ = ["DEFAULT_ALLOWED_MODULES", "SafeSerializer", "allowed_module_list", "module_allowed"]

_log = get_logger(__name__)

DEFAULT_ALLOWED_MODULES: Final[tuple[str, ...]] = (
    "langchain_core",
    "langgraph",
    "crewai",
    "pydantic",
)
"""Modules (and their submodules) whose classes are rebuilt on load by default."""

_FAST_PACK_OPTIONS: Final = (
    ormsgpack.OPT_PASSTHROUGH_TUPLE
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_UUID
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_BIG_INT
)
_PACK_OPTIONS: Final = _FAST_PACK_OPTIONS | ormsgpack.OPT_NON_STR_KEYS
_UNPACK_OPTIONS: Final = ormsgpack.OPT_NON_STR_KEYS

# Extension codes (16 and up: LangGraph's JsonPlusSerializer uses 0-7).
_EXT_TUPLE: Final = 16
_EXT_SET: Final = 17
_EXT_FROZENSET: Final = 18
_EXT_DATETIME: Final = 19  # [isoformat, zone key | None, fold]
_EXT_DATE: Final = 20  # isoformat
_EXT_TIME: Final = 21  # [isoformat, zone key | None, fold]
_EXT_TIMEDELTA: Final = 22  # [days, seconds, microseconds]
_EXT_UUID: Final = 23  # 16 bytes
_EXT_DECIMAL: Final = 24  # str
_EXT_BIGINT: Final = 25  # str
_EXT_DICT: Final = 26  # [[key, value], ...] (a key MessagePack cannot keep as it is)
_EXT_BYTEARRAY: Final = 27  # bytes
_EXT_DEQUE: Final = 28  # [items, maxlen]
_EXT_PATH: Final = 29  # [pathlib class name, str]
_EXT_ENUM: Final = 32  # [module, qualname, value]
_EXT_DATACLASS: Final = 33  # [module, qualname, {field: value}]
_EXT_PYDANTIC: Final = 34  # [module, qualname, {field: value}]
_EXT_NAMEDTUPLE: Final = 35  # [module, qualname, {field: value}]
_EXT_OBJECT: Final = 36  # [module, qualname, {attribute: value}]

_CLASS_KINDS: Final[dict[int, str]] = {
    _EXT_ENUM: "enum",
    _EXT_DATACLASS: "dataclass",
    _EXT_PYDANTIC: "Pydantic model",
    _EXT_NAMEDTUPLE: "named tuple",
    _EXT_OBJECT: "object",
}

_VALIDATE_BY_NAME: Final = "by_name" in inspect.signature(BaseModel.model_validate).parameters
"""Whether Pydantic (2.11+) can validate by field name when fields have aliases."""

_NATIVE_KEY_TYPES: Final[frozenset[type]] = frozenset({str, int, float, bool, type(None), bytes})
"""Dict key types MessagePack keeps as they are (others go through ``_EXT_DICT``)."""

_PATH_TYPES: Final[dict[str, type[pathlib.PurePath]]] = {
    cls.__name__: cls
    for cls in (
        pathlib.Path,
        pathlib.PosixPath,
        pathlib.WindowsPath,
        pathlib.PurePath,
        pathlib.PurePosixPath,
        pathlib.PureWindowsPath,
    )
}


class _KeyedDict:
    """A dict whose keys MessagePack would change, encoded as a list of pairs."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[list[Any]]) -> None:
        self.pairs = pairs


def _prepare(obj: Any) -> Any:
    """Replace dicts with non-native keys (at any depth of dicts and lists) by _KeyedDict.

    Returns the object itself when nothing had to change.
    """
    if isinstance(obj, list):
        items: list[Any] = obj  # pyright: ignore[reportUnknownVariableType]
        copied: list[Any] | None = None
        for index, item in enumerate(items):
            if isinstance(item, dict | list):
                prepared = _prepare(item)
                if prepared is not item:
                    if copied is None:
                        copied = list(items)
                    copied[index] = prepared
        return items if copied is None else copied
    if isinstance(obj, dict):
        mapping: dict[Any, Any] = obj  # pyright: ignore[reportUnknownVariableType]
        plain_keys = True
        changed: dict[Any, Any] | None = None
        for key, value in mapping.items():
            if type(key) not in _NATIVE_KEY_TYPES:
                plain_keys = False
            if isinstance(value, dict | list):
                prepared = _prepare(value)
                if prepared is not value:
                    if changed is None:
                        changed = dict(mapping)
                    changed[key] = prepared
        result = mapping if changed is None else changed
        if plain_keys:
            return result
        return _KeyedDict([[key, value] for key, value in result.items()])
    return obj


def _zone_key(zone: tzinfo | None) -> str | None:
    return zone.key if isinstance(zone, ZoneInfo) else None


def _fields_of_model(obj: BaseModel) -> dict[str, Any]:
    fields = {name: getattr(obj, name) for name in type(obj).model_fields}
    extra = obj.__pydantic_extra__
    if extra:
        fields.update(extra)
    return fields


def _attributes_of(obj: object) -> dict[str, Any] | None:
    """The instance state of a plain object (``__dict__`` and slots), or None if it has none."""
    state: dict[str, Any] = {}
    found = False
    for klass in type(obj).__mro__:
        slots: Any = klass.__dict__.get("__slots__", ())
        names: tuple[str, ...] = (slots,) if isinstance(slots, str) else tuple(slots)
        for name in names:
            if name in ("__dict__", "__weakref__"):
                continue
            found = True
            if hasattr(obj, name):
                state[name] = getattr(obj, name)
    instance_dict: Any = getattr(obj, "__dict__", None)
    if isinstance(instance_dict, dict):
        found = True
        state.update(instance_dict)  # pyright: ignore[reportUnknownArgumentType]
    return state if found else None


def allowed_module_list(extra: Iterable[str]) -> tuple[str, ...]:
    """The modules whose classes a serializer rebuilds: the defaults, then ``extra``.

    Args:
        extra: Modules to allow too (a trailing dot is ignored).

    Returns:
        :data:`DEFAULT_ALLOWED_MODULES` and ``extra``, each once, in that order.
    """
    return tuple(dict.fromkeys([*DEFAULT_ALLOWED_MODULES, *(m.rstrip(".") for m in extra)]))


def module_allowed(module: str, allowed: Iterable[str]) -> bool:
    """Tell whether a module is one of ``allowed`` or a submodule of one.

    Args:
        module: A module's dotted name.
        allowed: Allowed modules (``"myapp"`` allows ``myapp.state``).

    Returns:
        Whether classes of ``module`` may be rebuilt.
    """
    return any(module == each or module.startswith(each + ".") for each in allowed)


class SafeSerializer:
    """LangGraph-compatible serializer on MessagePack that refuses pickles.

    Args:
        allowed_modules: Modules whose classes (Pydantic models, dataclasses, enums, named
            tuples, plain objects) are rebuilt on load, in addition to
            :data:`DEFAULT_ALLOWED_MODULES`; a module allows its submodules too
            (``"myapp"`` allows ``myapp.state``).
        allowed_classes: Exact classes allowed on load, as classes or ``(module, qualname)``
            pairs (LangGraph passes a graph's state types this way).
        strict: Raise :class:`~agentmesh.core.CheckpointSerdeError` on a class that is not
            allowed or cannot be rebuilt, instead of loading its fields as a dict with a warning.

    Attributes:
        strict: Whether disallowed classes raise.
    """

    def __init__(
        self,
        allowed_modules: Iterable[str] = (),
        *,
        allowed_classes: Iterable[tuple[str, ...] | type] = (),
        strict: bool = False,
    ) -> None:
        self._modules = allowed_module_list(allowed_modules)
        self._classes: frozenset[tuple[str, str]] = frozenset(
            (item.__module__, item.__qualname__)
            if isinstance(item, type)
            else (item[0], ".".join(item[1:]))
            for item in allowed_classes
        )
        self.strict = strict
        self._resolved: dict[tuple[int, str, str], Any] = {}

    @property
    def allowed_modules(self) -> tuple[str, ...]:
        """The modules whose classes are rebuilt on load (defaults included)."""
        return self._modules

    def with_allowlist(self, extra: Iterable[tuple[str, ...] | type]) -> SafeSerializer:
        """A copy that also allows these exact classes (classes or ``(module, name)`` pairs).

        Args:
            extra: Classes to allow on load.

        Returns:
            A new serializer; this one is unchanged.
        """
        return SafeSerializer(
            self._modules,
            allowed_classes=[*self._classes, *extra],
            strict=self.strict,
        )

    def _module_allowed(self, module: str) -> bool:
        return module_allowed(module, self._modules)

    # -- dumping ----------------------------------------------------------------------------

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Serialise a value to a type tag and bytes.

        Args:
            obj: The value.

        Returns:
            ``("null", b"")`` for None, ``("bytes", obj)`` for bytes, ``("bytearray", …)``
            for a bytearray, ``("msgpack", …)`` for everything else.

        Raises:
            CheckpointSerdeError: The value holds an object of a type it cannot encode.
        """
        if obj is None:
            return "null", b""
        if type(obj) is bytes:
            return "bytes", obj
        if type(obj) is bytearray:
            return "bytearray", bytes(obj)
        failed: list[type] = []
        try:
            # Fast path: string keys only (no Python walk over the value).
            fast = self._make_default(failed, fast=True)
            return "msgpack", ormsgpack.packb(obj, default=fast, option=_FAST_PACK_OPTIONS)
        except (TypeError, ValueError, RecursionError) as exc:
            if failed:
                raise self._dump_error(obj, failed, exc) from exc
        # A dict somewhere has non-string keys: encode those dicts as lists of pairs.
        try:
            slow = self._make_default(failed, fast=False)
            return "msgpack", ormsgpack.packb(_prepare(obj), default=slow, option=_PACK_OPTIONS)
        except (TypeError, ValueError, RecursionError) as exc:
            raise self._dump_error(obj, failed, exc) from exc

    @staticmethod
    def _dump_error(obj: Any, failed: list[type], exc: BaseException) -> CheckpointSerdeError:
        """The error for a value that cannot be encoded, naming the innermost culprit."""
        culprit = failed[0] if failed else type(obj)
        detail = "" if failed else f" ({exc})"
        return CheckpointSerdeError(
            f"cannot serialise a value of type {culprit.__module__}.{culprit.__qualname__} "
            f"for a checkpoint{detail}; SafeSerializer encodes JSON-like values, dates, "
            "UUIDs, decimals, enums, dataclasses, named tuples and Pydantic models, and "
            "never falls back to pickle"
        )

    def _make_default(self, failed: list[type], *, fast: bool) -> Callable[[Any], Any]:
        """The ``default`` hook for one dump (``failed`` collects unencodable types).

        ``fast`` packs nested payloads as they are, refusing non-string keys; otherwise dicts
        with keys MessagePack would change are encoded as lists of pairs.
        """

        def pack(code: int, payload: Any) -> ormsgpack.Ext:
            if fast:
                return ormsgpack.Ext(
                    code, ormsgpack.packb(payload, default=default, option=_FAST_PACK_OPTIONS)
                )
            return ormsgpack.Ext(
                code, ormsgpack.packb(_prepare(payload), default=default, option=_PACK_OPTIONS)
            )

        def default(obj: Any) -> Any:
            encoded = self._encode(obj, pack)
            if encoded is None:
                culprit = cast("type[Any]", type(obj))
                failed.append(culprit)
                raise TypeError(f"cannot encode {type(obj).__qualname__}")
            return encoded

        return default

    def _encode(self, obj: Any, pack: Callable[[int, Any], ormsgpack.Ext]) -> Any:
        """Encode one object MessagePack does not know, or None when it cannot."""
        if isinstance(obj, _KeyedDict):
            return pack(_EXT_DICT, obj.pairs)
        cls = cast("type[Any]", type(obj))
        if isinstance(obj, BaseModel):
            return pack(_EXT_PYDANTIC, [cls.__module__, cls.__qualname__, _fields_of_model(obj)])
        if isinstance(obj, tuple):
            if hasattr(cls, "_fields"):
                fields: dict[str, Any] = obj._asdict()  # type: ignore[attr-defined]
                return pack(_EXT_NAMEDTUPLE, [cls.__module__, cls.__qualname__, fields])
            return pack(_EXT_TUPLE, list(obj))  # pyright: ignore[reportUnknownArgumentType]
        if isinstance(obj, enum.Enum):
            return pack(_EXT_ENUM, [cls.__module__, cls.__qualname__, obj.value])
        if isinstance(obj, datetime):
            return pack(_EXT_DATETIME, [obj.isoformat(), _zone_key(obj.tzinfo), obj.fold])
        if isinstance(obj, date):
            return pack(_EXT_DATE, obj.isoformat())
        if isinstance(obj, time):
            return pack(_EXT_TIME, [obj.isoformat(), _zone_key(obj.tzinfo), obj.fold])
        if isinstance(obj, timedelta):
            return pack(_EXT_TIMEDELTA, [obj.days, obj.seconds, obj.microseconds])
        if isinstance(obj, UUID):
            return pack(_EXT_UUID, obj.bytes)
        if isinstance(obj, Decimal):
            return pack(_EXT_DECIMAL, str(obj))
        if isinstance(obj, frozenset):
            return pack(_EXT_FROZENSET, list(obj))  # pyright: ignore[reportUnknownArgumentType]
        if isinstance(obj, set):
            return pack(_EXT_SET, list(obj))  # pyright: ignore[reportUnknownArgumentType]
        if isinstance(obj, int):
            return pack(_EXT_BIGINT, str(obj))
        if isinstance(obj, bytearray):
            return pack(_EXT_BYTEARRAY, bytes(obj))
        if isinstance(obj, deque):
            items: deque[Any] = obj  # pyright: ignore[reportUnknownVariableType]
            return pack(_EXT_DEQUE, [list(items), items.maxlen])
        if isinstance(obj, pathlib.PurePath) and cls.__name__ in _PATH_TYPES:
            return pack(_EXT_PATH, [cls.__name__, str(obj)])
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            values = {
                field.name: getattr(obj, field.name)
                for field in dataclasses.fields(obj)
                if hasattr(obj, field.name)
            }
            return pack(_EXT_DATACLASS, [cls.__module__, cls.__qualname__, values])
        if isinstance(obj, BaseException):
            return repr(obj)
        if self._module_allowed(cls.__module__) or (
            (cls.__module__, cls.__qualname__) in self._classes
        ):
            state = _attributes_of(obj)
            if state is not None:
                return pack(_EXT_OBJECT, [cls.__module__, cls.__qualname__, state])
        return None

    # -- loading ----------------------------------------------------------------------------

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Deserialise a value from its type tag and bytes.

        Args:
            data: ``(type tag, bytes)`` as :meth:`dumps_typed` returned them.

        Returns:
            The value.

        Raises:
            CheckpointSerdeError: The tag is ``"pickle"`` or unknown, the bytes are not a valid
                payload, or (with ``strict``) a class is not allowed or cannot be rebuilt.
        """
        type_tag, payload = data
        if type_tag == "msgpack":
            return self._unpack(payload)
        if type_tag == "null":
            return None
        if type_tag == "bytes":
            return bytes(payload)
        if type_tag == "bytearray":
            return bytearray(payload)
        if type_tag == "json":
            try:
                return json.loads(payload)
            except ValueError as exc:
                raise CheckpointSerdeError(f"invalid JSON checkpoint payload: {exc}") from exc
        if type_tag == "pickle":
            raise CheckpointSerdeError(
                "refusing to unpickle a checkpoint payload: unpickling can run arbitrary code; "
                "this payload was written by a serializer with a pickle fallback and cannot be "
                "loaded safely (rewrite it with SafeSerializer)"
            )
        raise CheckpointSerdeError(
            f"refusing to load a checkpoint payload of unknown type {type_tag!r}; "
            "SafeSerializer reads 'msgpack', 'json', 'bytes', 'bytearray' and 'null'"
        )

    def _unpack(self, payload: bytes) -> Any:
        errors: list[Exception] = []

        def ext_hook(code: int, data: bytes) -> Any:
            try:
                value = ormsgpack.unpackb(data, ext_hook=ext_hook, option=_UNPACK_OPTIONS)
                return self._decode(code, value)
            except Exception as exc:
                errors.append(exc)
                raise

        try:
            return ormsgpack.unpackb(payload, ext_hook=ext_hook, option=_UNPACK_OPTIONS)
        except (ValueError, TypeError) as exc:
            cause = errors[0] if errors else exc
            if isinstance(cause, CheckpointSerdeError):
                raise cause from None
            raise CheckpointSerdeError(f"invalid checkpoint payload: {cause}") from cause

    def _decode(self, code: int, value: Any) -> Any:
        """Rebuild one extension value from its decoded payload."""
        if code == _EXT_TUPLE:
            return tuple(value)
        if code in _CLASS_KINDS:
            module, qualname, fields = value
            return self._rebuild(code, module, qualname, fields)
        if code == _EXT_DATETIME:
            iso, zone, fold = value
            moment = datetime.fromisoformat(iso)
            return moment.replace(tzinfo=ZoneInfo(zone), fold=fold) if zone else moment
        if code == _EXT_DICT:
            return {key: item for key, item in value}
        if code == _EXT_UUID:
            return UUID(bytes=value)
        if code == _EXT_DATE:
            return date.fromisoformat(value)
        if code == _EXT_TIME:
            iso, zone, fold = value
            clock = time.fromisoformat(iso)
            return clock.replace(tzinfo=ZoneInfo(zone), fold=fold) if zone else clock
        if code == _EXT_TIMEDELTA:
            return timedelta(days=value[0], seconds=value[1], microseconds=value[2])
        if code == _EXT_DECIMAL:
            return Decimal(value)
        if code == _EXT_SET:
            return set(value)
        if code == _EXT_FROZENSET:
            return frozenset(value)
        if code == _EXT_BIGINT:
            return int(value)
        if code == _EXT_BYTEARRAY:
            return bytearray(value)
        if code == _EXT_DEQUE:
            return deque(value[0], value[1])
        if code == _EXT_PATH and value[0] in _PATH_TYPES:
            return _PATH_TYPES[value[0]](value[1])
        raise CheckpointSerdeError(
            f"refusing to load a checkpoint payload with unknown MessagePack extension {code}; "
            "it was not written by SafeSerializer"
        )

    def _refuse(self, kind: str, module: str, qualname: str, why: str, fields: Any) -> Any:
        """Handle a class that cannot be rebuilt: raise (strict) or return its fields."""
        name = f"{module}.{qualname}"
        if self.strict:
            raise CheckpointSerdeError(
                f"refusing to rebuild {kind} {name} from a checkpoint: {why}"
            )
        key = (-1, module, qualname)
        if key not in self._resolved:
            self._resolved[key] = None
            _log.warning(
                "agentmesh.checkpoint.serde_class_not_rebuilt",
                kind=kind,
                name=name,
                reason=why,
                loaded_as=type(fields).__name__,
            )
        return fields

    def _resolve(self, code: int, module: str, qualname: str) -> tuple[Any, str | None]:
        """The class for an extension value, or (None, reason) when it must not be rebuilt."""
        key = (code, module, qualname)
        cached = self._resolved.get(key)
        if cached is not None:
            return cached, None
        if not (self._module_allowed(module) or (module, qualname) in self._classes):
            return None, (
                f"module {module!r} is not allowed; allow it with "
                f"SafeSerializer(allowed_modules=[{module!r}])"
            )
        try:
            target: Any = sys.modules.get(module) or importlib.import_module(module)
            for part in qualname.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            return None, f"the class cannot be found ({exc})"
        if not isinstance(target, type) or not _is_kind(code, target):
            return None, f"it is not a {_CLASS_KINDS[code]}"
        self._resolved[key] = target
        return target, None

    def _rebuild(self, code: int, module: str, qualname: str, fields: Any) -> Any:
        kind = _CLASS_KINDS[code]
        cls, why = self._resolve(code, module, qualname)
        if cls is None:
            return self._refuse(kind, module, qualname, why or "not allowed", fields)
        try:
            if code == _EXT_PYDANTIC:
                return _rebuild_model(cls, fields)
            if code == _EXT_ENUM:
                return cls(fields)
            if code == _EXT_DATACLASS:
                return _rebuild_dataclass(cls, fields)
            if code == _EXT_NAMEDTUPLE:
                known: tuple[str, ...] = cls._fields
                return cls(**{name: value for name, value in fields.items() if name in known})
            instance = cls.__new__(cls)
            for name, value in fields.items():
                object.__setattr__(instance, name, value)
            return instance
        except Exception as exc:  # noqa: BLE001 - a class's own validation may raise anything
            return self._refuse(kind, module, qualname, f"rebuilding failed: {exc}", fields)


def _is_kind(code: int, cls: type) -> bool:
    if code == _EXT_PYDANTIC:
        return issubclass(cls, BaseModel)
    if code == _EXT_ENUM:
        return issubclass(cls, enum.Enum)
    if code == _EXT_DATACLASS:
        return dataclasses.is_dataclass(cls)
    if code == _EXT_NAMEDTUPLE:
        return issubclass(cls, tuple) and hasattr(cast(Any, cls), "_fields")
    return not issubclass(cls, BaseException | type)


def _rebuild_model(cls: type[BaseModel], fields: dict[str, Any]) -> BaseModel:
    """Validate a model from its fields by name; unknown fields are dropped, new ones default."""
    if issubclass(cls, RootModel):
        return cast("type[BaseModel]", cls).model_validate(fields.get("root"))
    known = cls.model_fields
    allow_extra = cls.model_config.get("extra") == "allow"
    data = fields if allow_extra else {k: v for k, v in fields.items() if k in known}
    try:
        if _VALIDATE_BY_NAME:
            return cls.model_validate(data, by_name=True)
        return cls.model_validate(data)
    except ValueError:
        return cls.model_construct(**data)


def _rebuild_dataclass(cls: type[Any], fields: dict[str, Any]) -> Any:
    """Build a dataclass from its init fields by name, then set its other fields."""
    declared = {field.name: field for field in dataclasses.fields(cls)}
    init = {k: v for k, v in fields.items() if k in declared and declared[k].init}
    instance = cls(**init)
    for name, value in fields.items():
        if name in declared and not declared[name].init:
            object.__setattr__(instance, name, value)
    return instance
