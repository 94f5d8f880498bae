"""Structured JSON logging for every AgentMesh package, through structlog.

Library code asks for a logger with :func:`get_logger`; processes that own their output (the
collector, the CLIs, the zero-code launcher) call :func:`configure_logging` once, which makes
structlog write one JSON object per event to standard error, and renders the records of the
libraries that log through the standard :mod:`logging` module (asyncpg, aiohttp, grpc, redis…)
the same way: one JSON object per record, a traceback in its ``exception`` field. A warning such
libraries repeat while a server is down (asyncpg's "Failed to restore the pool connection
floor; retrying", every second or two) is written at most once a minute, with the number of
repeats left out since the last one written (``repeats_suppressed``).

A library must not decide where a host application's logs go, so until structlog is
configured (by :func:`configure_logging` or by the application) AgentMesh's events go through
the standard :mod:`logging` module under the ``agentmesh.*`` logger names, rendered as JSON:
the application's logging configuration decides, and with none only warnings and errors reach
standard error. Once structlog is configured, events follow its configuration (so
``structlog.testing.capture_logs`` sees them too).

structlog itself is imported by the first event logged (or :func:`configure_logging`), not by
this module: every module asks for its logger when it is imported, and structlog's import
(about 0.3 s, most of it its development renderer's) is paid only by processes that log.

Example:
    >>> from structlog.testing import capture_logs
    >>> with capture_logs() as logs:
    ...     get_logger("agentmesh.example").info("span batch stored", spans=3)
    >>> logs
    [{'spans': 3, 'event': 'span batch stored', 'log_level': 'info'}]
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, ClassVar, Final, Literal, cast

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from agentmesh.core.settings import AgentMeshSettings, LogLevel

if TYPE_CHECKING:
    import structlog

__all__ = ["Logger", "LoggingSettings", "configure_logging", "get_logger"]

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

_REPEATING_LOGGERS: Final[Mapping[str, float]] = {"asyncpg.pool": 60.0}
"""Standard-library loggers whose records repeat while a server is down, and the least
seconds between two records of the same message written: asyncpg's pool warns each time it
fails to reconnect (every second or two; its traceback says no more than the collector's own
``store_unavailable`` events)."""

_REPEATS_FIELD: Final = "repeats_suppressed"
"""The field counting the records of the same message left out before this one."""


@cache
def _stdlib_processors() -> list[structlog.typing.Processor]:
    """The processors of events sent through the standard library while unconfigured."""
    import structlog  # on first use (see the module docstring)

    return [
        structlog.stdlib.filter_by_level,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]


class Logger:
    """A structlog logger that respects the host application's logging setup.

    Each call goes to structlog when structlog is configured, else to the standard library
    logger of the same name (rendered as JSON). Get one with :func:`get_logger`.

    Args:
        name: The logger's name, usually the module's ``__name__``.
    """

    __slots__ = ("_context", "_name", "_stdlib")

    def __init__(self, name: str, context: dict[str, object] | None = None) -> None:
        self._name = name
        self._context: dict[str, object] = context or {}
        self._stdlib: structlog.stdlib.BoundLogger | None = None

    def _target(self) -> structlog.typing.FilteringBoundLogger:
        import structlog  # on first use (see the module docstring)

        if structlog.is_configured():
            return cast(
                "structlog.typing.FilteringBoundLogger",
                structlog.get_logger(self._name).bind(**self._context),
            )
        if self._stdlib is None:
            self._stdlib = cast(
                "structlog.stdlib.BoundLogger",
                structlog.wrap_logger(
                    logging.getLogger(self._name),
                    processors=_stdlib_processors(),
                    wrapper_class=structlog.stdlib.BoundLogger,
                ).bind(**self._context),
            )
        return cast("structlog.typing.FilteringBoundLogger", self._stdlib)

    def bind(self, **context: object) -> Logger:
        """Return a logger that adds ``context`` to every event.

        Args:
            **context: Key-value pairs.

        Returns:
            The new logger.
        """
        return Logger(self._name, {**self._context, **context})

    def debug(self, event: str, **fields: object) -> None:
        """Log ``event`` at debug level.

        Args:
            event: What happened.
            **fields: Structured details.
        """
        self._target().debug(event, **fields)

    def info(self, event: str, **fields: object) -> None:
        """Log ``event`` at info level.

        Args:
            event: What happened.
            **fields: Structured details.
        """
        self._target().info(event, **fields)

    def warning(self, event: str, **fields: object) -> None:
        """Log ``event`` at warning level.

        Args:
            event: What happened.
            **fields: Structured details.
        """
        self._target().warning(event, **fields)

    def error(self, event: str, **fields: object) -> None:
        """Log ``event`` at error level.

        Args:
            event: What happened.
            **fields: Structured details.
        """
        self._target().error(event, **fields)

    def exception(self, event: str, **fields: object) -> None:
        """Log ``event`` at error level with the exception being handled.

        Args:
            event: What happened.
            **fields: Structured details.
        """
        self._target().exception(event, **fields)


def get_logger(name: str) -> Logger:
    """Return the logger AgentMesh library code uses.

    Args:
        name: The logger's name, usually the module's ``__name__``.

    Returns:
        The logger.
    """
    return Logger(name)


class LoggingSettings(AgentMeshSettings):
    """How AgentMesh processes log."""

    model_config: ClassVar[SettingsConfigDict] = SettingsConfigDict(
        env_prefix="AGENTMESH_LOG_", extra="ignore", validate_default=True
    )

    level: LogLevel = Field(default="info", description="Lowest level written.")
    format: Literal["json", "console"] = Field(
        default="json", description="`json` for machines, `console` for people."
    )


class _Repeats(logging.Filter):
    """Let one record of each message of ``_REPEATING_LOGGERS`` through per interval.

    The record written carries the number of records of the same message left out since the
    last one written, in ``_REPEATS_FIELD`` (when there were any).
    """

    def __init__(self, intervals: Mapping[str, float]) -> None:
        super().__init__()
        self._intervals = dict(intervals)
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}  # last written, left out

    def filter(self, record: logging.LogRecord) -> bool:
        interval = self._intervals.get(record.name)
        if interval is None:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            last, left_out = self._seen.get(key, (now - interval, 0))
            if now - last < interval:
                self._seen[key] = (last, left_out + 1)
                return False
            self._seen[key] = (now, 0)
        if left_out:
            setattr(record, _REPEATS_FIELD, left_out)  # a field of the event (ExtraAdder)
        return True


class _StdlibHandler(logging.Handler):
    """Writes the records of standard-library loggers as structlog renders events.

    To the standard error of the moment (as structlog's events), and only while structlog is
    configured: after ``structlog.reset_defaults()`` (tests) it writes nothing.
    """

    def __init__(self, level: int, formatter: logging.Formatter) -> None:
        super().__init__(level)
        self.setFormatter(formatter)
        self.addFilter(_Repeats(_REPEATING_LOGGERS))

    def emit(self, record: logging.LogRecord) -> None:
        import structlog

        if not structlog.is_configured():
            return
        try:
            line = self.format(record)
            stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - as logging.StreamHandler: reported, never raised
            self.handleError(record)


def _route_stdlib(level: int, renderer: structlog.typing.Processor) -> None:
    """Render the standard library's records with ``renderer``, through the root logger.

    Records reach the root logger at its level (warning unless the application lowered it);
    this handler writes those at ``level`` or above. A handler installed by an earlier call is
    replaced; the application's own handlers are left alone.
    """
    import structlog

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ExtraAdder(allow=(_REPEATS_FIELD,)),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StdlibHandler)]:
        root.removeHandler(old)
    root.addHandler(_StdlibHandler(level, formatter))


def configure_logging(
    level: LogLevel | None = None,
    fmt: Literal["json", "console"] | None = None,
    *,
    force: bool = False,
) -> None:
    """Configure structlog to write one JSON object per event to standard error.

    The records of libraries that log through the standard :mod:`logging` module (asyncpg,
    aiohttp, grpc, redis…) are rendered the same way, by a handler on the root logger: those
    the root logger passes (warnings and above unless the application lowered its level), at
    ``level`` or above, with ``logger`` naming their logger and any traceback in
    ``exception``. asyncpg's pool warning, repeated every second or two while PostgreSQL is
    down, is written at most once a minute, with ``repeats_suppressed`` counting those left
    out.

    Args:
        level: Lowest level written; defaults to ``AGENTMESH_LOG_LEVEL`` (``info``).
        fmt: ``json`` (default, ``AGENTMESH_LOG_FORMAT``) or ``console``.
        force: Reconfigure even when structlog was configured already (by the application,
            say). Without it an existing configuration is left alone.
    """
    import structlog  # on first use (see the module docstring)

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
    _route_stdlib(_LEVELS[chosen_level], renderer)
