"""Structured JSON logging for every AgentMesh package, through structlog.

Library code only asks for a logger (``structlog.get_logger(__name__)``); processes that own
their output (the collector, the CLI, the zero-code launcher) call :func:`configure_logging` once.
Logs go to standard error so they never mix with a program's own output.
"""

from __future__ import annotations

import logging
import sys
from typing import ClassVar, Literal

import structlog
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from agentmesh.core.settings import AgentMeshSettings, LogLevel

__all__ = ["LoggingSettings", "configure_logging"]

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


class LoggingSettings(AgentMeshSettings):
    """How AgentMesh processes log."""

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_LOG_", extra="ignore", validate_default=True
    )

    level: LogLevel = Field(default="info", description="Lowest level written.")
    format: Literal["json", "console"] = Field(
        default="json", description="`json` for machines, `console` for people."
    )


def configure_logging(
    level: LogLevel | None = None,
    fmt: Literal["json", "console"] | None = None,
    *,
    force: bool = False,
) -> None:
    """Configure structlog to write one JSON object per event to standard error.

    Args:
        level: Lowest level written; defaults to ``AGENTMESH_LOG_LEVEL`` (``info``).
        fmt: ``json`` (default, ``AGENTMESH_LOG_FORMAT``) or ``console``.
        force: Reconfigure even when structlog was configured already (by the application,
            say). Without it an existing configuration is left alone.
    """
    if structlog.is_configured() and not force:
        return
    settings = LoggingSettings.load()
    chosen_level = level or settings.level
    chosen_fmt = fmt or settings.format
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if chosen_fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[chosen_level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
