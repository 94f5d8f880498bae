"""The settings base every AgentMesh package builds its settings class on.

Settings come from environment variables with the ``AGENTMESH_`` prefix (each package adds its
own part, for example ``AGENTMESH_COLLECTOR_``), then from keyword arguments. A wrong value raises
:class:`~agentmesh.core.errors.ConfigError` naming the variable and what it wants, instead of
pydantic's generic report. A number setting never takes ``nan`` or an infinity (``Input should
be a finite number``).
"""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, ClassVar, Final, Literal, Self

from pydantic import AfterValidator, BeforeValidator, SecretStr, ValidationError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from agentmesh.core.errors import ConfigError
from agentmesh.core.settings_check import unknown_variables

__all__ = [
    "RESUME_ENV",
    "AgentMeshSettings",
    "HttpUrlList",
    "LogLevel",
    "SecretList",
    "TextList",
    "check_http_urls",
    "split_list",
]

_WARNED: set[str] = set()
"""Unknown variables already logged by this process."""

RESUME_ENV: Final = "AGENTMESH_RESUME"
"""Environment variable holding a resume plan (JSON) for the app: ``agentmesh resume`` sets it."""

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
"""A logging level name."""


def split_list(value: object) -> object:
    """Read a list from one variable: a JSON list, or items separated by commas.

    Args:
        value: The raw value (other than a string: returned as it is).

    Returns:
        The list (blank items dropped), or ``value``.

    Example:
        >>> split_list(" a, b ,,c"), split_list('["x,y"]'), split_list(["z"])
        (['a', 'b', 'c'], ['x,y'], ['z'])
    """
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def check_http_urls(urls: list[str]) -> list[str]:
    """Refuse an item that is not an ``http://`` or ``https://`` URL.

    Args:
        urls: The URLs.

    Returns:
        ``urls``.

    Raises:
        ValueError: One of them is not an http(s) URL (pydantic reports it with the variable).
    """
    for url in urls:
        if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return urls


TextList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]
"""A list setting given as a JSON list or comma-separated in one variable."""
HttpUrlList = Annotated[
    list[str], NoDecode, BeforeValidator(split_list), AfterValidator(check_http_urls)
]
"""A list of http(s) URLs given as a JSON list or comma-separated in one variable."""
SecretList = Annotated[list[SecretStr], NoDecode, BeforeValidator(split_list)]
"""A list of secrets given as a JSON list or comma-separated in one variable."""


class AgentMeshSettings(BaseSettings):
    """Base class of every AgentMesh settings class.

    Subclasses set ``model_config = SettingsConfigDict(env_prefix="AGENTMESH_<PART>_")`` and
    declare their fields with a description; :meth:`load` builds an instance and turns
    validation errors into one readable :class:`ConfigError`.

    Example:
        >>> from pydantic import Field
        >>> class DemoSettings(AgentMeshSettings):
        ...     model_config = SettingsConfigDict(env_prefix="AGENTMESH_DEMO_")
        ...     port: int = Field(default=1, ge=1, description="A port.")
        >>> DemoSettings.load(port=8).port
        8
    """

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_",
        extra="ignore",
        validate_default=True,
        allow_inf_nan=False,  # `nan` is refused as not finite, not as out of some range
    )

    @classmethod
    def env_var(cls, field: str) -> str:
        """Return the environment variable that sets ``field``.

        Args:
            field: The field name.

        Returns:
            The variable's name, for example ``AGENTMESH_COLLECTOR_GRPC_PORT``.
        """
        prefix = str(cls.model_config.get("env_prefix", ""))
        return f"{prefix}{field}".upper()

    @classmethod
    def _json_shape(cls, name: str) -> str:
        """What a complex setting's JSON looks like, for messages."""
        field = cls.model_fields.get(name)
        annotation = repr(field.annotation) if field is not None else ""
        if annotation.startswith(("dict", "typing.Dict", "collections.abc.Mapping")):
            return 'a JSON object, like {"name": "value"}'
        if annotation.startswith(("list", "tuple", "typing.List", "collections.abc.Sequence")):
            return 'a JSON list, like ["value"]'
        return "a JSON value (a list or an object)"

    @classmethod
    def _is_secret(cls, name: str) -> bool:
        field = cls.model_fields.get(name)
        return field is not None and "Secret" in repr(field.annotation)

    @classmethod
    def load(cls, **overrides: object) -> Self:
        """Build the settings from the environment and ``overrides``.

        A variable under the class's prefix that no setting reads (a typo, an old name) is
        logged once per process as ``unknown_setting``, with the declared variable it most
        resembles (see :mod:`agentmesh.core.settings_check`).

        Args:
            **overrides: Values that take precedence over the environment.

        Returns:
            The validated settings.

        Raises:
            ConfigError: A value is missing or wrong; the message names each variable at fault
                and what it wants (the value itself is masked for secret fields).
        """
        try:
            loaded = cls(**overrides)  # pyright: ignore[reportArgumentType]
        except SettingsError as exc:
            # A complex value (list, dict) that is not valid JSON fails before validation.
            match = re.search(r'field "([^"]+)"', str(exc))
            name = match.group(1) if match else "?"
            cause = exc.__cause__
            reason = f": {cause}" if cause is not None and not cls._is_secret(name) else ""
            raise ConfigError(
                f"invalid configuration: {cls.env_var(name)}: expected {cls._json_shape(name)}"
                f"{reason}"
            ) from exc
        except ValidationError as exc:
            problems: list[str] = []
            for err in exc.errors():
                said = str(err["msg"]).removeprefix("Value error, ")  # a validator's own words
                if not err["loc"]:  # a check across fields: its message names them
                    problems.append(said)
                    continue
                field = ".".join(str(part) for part in err["loc"])
                name = field.split(".", 1)[0]
                where = name if name in overrides else cls.env_var(name)
                shown = "'***'" if cls._is_secret(name) else repr(err.get("input"))
                problems.append(f"{where}={shown}: {said}")
            raise ConfigError("invalid configuration: " + "; ".join(problems)) from exc
        cls._warn_unknown_variables()
        return loaded

    @classmethod
    def _warn_unknown_variables(cls) -> None:
        """Log each variable under this class's prefix that sets nothing, once per process."""
        prefix = str(cls.model_config.get("env_prefix", ""))
        declared = {cls.env_var(name) for name in cls.model_fields}
        for unknown in unknown_variables(prefix, declared, os.environ):
            if unknown.name in _WARNED:
                continue
            _WARNED.add(unknown.name)
            from agentmesh.core.log import get_logger  # log imports this module

            hint = f"; did you mean {unknown.suggestion}?" if unknown.suggestion else ""
            get_logger(__name__).warning(
                "unknown_setting",
                variable=unknown.name,
                did_you_mean=unknown.suggestion,
                detail=f"{unknown.name} is not an AgentMesh setting and is ignored{hint}",
            )
