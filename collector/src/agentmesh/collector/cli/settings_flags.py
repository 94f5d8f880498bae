"""Command-line flags generated from a settings class: one ``--field-name`` per setting.

Every non-secret field of the settings class gets a flag named after it (``grpc_port`` →
``--grpc-port``) whose help is the field's description and variable; booleans get
``--x`` / ``--no-x``; lists take what their variable takes (comma-separated values or a JSON
list), objects take JSON. Secrets (``SecretStr`` fields) are read from the environment only, so
they never show in a process list.
"""

from __future__ import annotations

import argparse
import json
import re
import types
from pathlib import Path
from typing import Literal, TypeVar, Union, get_args, get_origin

from pydantic import BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from agentmesh.core import AgentMeshSettings, ConfigError
from agentmesh.core.settings import split_list

__all__ = ["add_settings_flags", "load_from_flags", "secret_fields", "settings_overrides"]

_S = TypeVar("_S", bound=AgentMeshSettings)


def _is_secret(annotation: object) -> bool:
    return "Secret" in repr(annotation)


def secret_fields(settings: type[BaseSettings]) -> list[str]:
    """Name the fields that are read from the environment only.

    Args:
        settings: The settings class.

    Returns:
        The secret fields' names.
    """
    return [name for name, f in settings.model_fields.items() if _is_secret(f.annotation)]


def _plain(annotation: object) -> object:
    """Drop ``None`` from an optional annotation."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


_SCALARS: tuple[type, ...] = (int, float, str, Path)


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected JSON, got {text!r}") from exc


def _reads_lists(field: FieldInfo) -> bool:
    """Whether the field reads a list from one string (comma-separated or JSON), as variables do."""
    return any(isinstance(m, BeforeValidator) and m.func is split_list for m in field.metadata)


def _add(parser: argparse.ArgumentParser, name: str, field: FieldInfo, env: str) -> None:
    flag = "--" + name.replace("_", "-")
    help_text = f"{field.description or name} ({env})".replace("%", "%%")
    annotation = _plain(field.annotation)
    if annotation is bool:
        parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=help_text)
    elif get_origin(annotation) is Literal:
        choices = [str(arg) for arg in get_args(annotation)]
        parser.add_argument(flag, dest=name, choices=choices, help=help_text)
    elif isinstance(annotation, type) and annotation in _SCALARS:
        parser.add_argument(flag, dest=name, type=annotation, help=help_text)
    elif _reads_lists(field):  # the setting splits the text itself, like its variable's value
        parser.add_argument(flag, dest=name, metavar="LIST", help=help_text)
    else:
        parser.add_argument(flag, dest=name, type=_json, metavar="JSON", help=help_text)


def add_settings_flags(
    parser: argparse.ArgumentParser,
    settings: type[BaseSettings],
    env_var: dict[str, str],
    *,
    skip: frozenset[str] = frozenset(),
) -> None:
    """Add a flag for every non-secret field of ``settings`` (defaults stay ``None``).

    Args:
        parser: The parser to extend.
        settings: The settings class.
        env_var: Each field's environment variable, for the help text.
        skip: Fields that already have a flag.
    """
    group = parser.add_argument_group("settings (each overrides its environment variable)")
    secrets = set(secret_fields(settings))
    for name, field in settings.model_fields.items():
        if name in skip or name in secrets:
            continue
        _add(group, name, field, env_var[name])  # pyright: ignore[reportArgumentType]


def settings_overrides(args: argparse.Namespace, settings: type[BaseSettings]) -> dict[str, object]:
    """Collect the flags that were given, as keyword overrides of the settings.

    Args:
        args: Parsed arguments.
        settings: The settings class the flags were made from.

    Returns:
        Field name to value, for the flags present on the command line.
    """
    overrides: dict[str, object] = {}
    for name in settings.model_fields:
        value: object = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return overrides


def load_from_flags(settings: type[_S], args: argparse.Namespace) -> _S:
    """Load the settings with the flags given; a wrong flag's error names the flag.

    Args:
        settings: The settings class the flags were made from.
        args: Parsed arguments.

    Returns:
        The settings.

    Raises:
        ConfigError: A value is wrong (the flag or the variable at fault is named).
    """
    overrides = settings_overrides(args, settings)
    try:
        return settings.load(**overrides)
    except ConfigError as exc:
        message = str(exc)
        for name in overrides:
            message = re.sub(rf"(?<![\w-]){name}=", f"--{name.replace('_', '-')}=", message)
        raise ConfigError(message) from exc
