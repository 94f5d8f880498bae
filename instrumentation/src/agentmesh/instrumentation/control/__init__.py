"""Recovery as the app sees it: the collector's decisions, followed in-process.

The collector publishes a control document (stopped and warned runs, circuit breakers of
failing models). A background thread keeps the latest one in memory (:class:`ControlClient`,
long polling ``GET <collector>/v1/control``); the app's hot paths only read it:

- every instrumented provider call runs :func:`check_run` for the run in baggage first: a
  stopped run's call raises :class:`~agentmesh.core.errors.RunStoppedError` instead of reaching
  the provider (a ``warn`` is logged once);
- framework wrappers call :func:`check_current_run` when an agent step starts;
- the router avoids the models :func:`open_breakers` lists (enforce mode), and records what it
  would have done (shadow mode).

Everything is fail-open: with the collector unreachable the last document is kept, and with
control off (``AGENTMESH_CONTROL_ENABLED=false``, or no collector named) the document is empty.

Example:
    >>> from agentmesh.instrumentation import control
    >>> from agentmesh.instrumentation.settings import InstrumentationSettings
    >>> off = InstrumentationSettings.load(control_enabled=False)
    >>> control.configure_control(settings=off) is None  # control off
    True
    >>> control.current().version, control.open_breakers()
    (0, frozenset())
    >>> control.check_run("some-run")  # nothing known about it: returns
    >>> control.shutdown_control()
"""

from agentmesh.instrumentation.control._backoff import Backoff
from agentmesh.instrumentation.control._checks import (
    check_current_run,
    check_run,
    current,
    open_breakers,
)
from agentmesh.instrumentation.control._client import ControlClient, ControlStats
from agentmesh.instrumentation.control._document import (
    EMPTY_DOCUMENT,
    Breaker,
    ControlDocument,
    RunAction,
    RunControl,
)
from agentmesh.instrumentation.control._runtime import (
    configure_control,
    control_client,
    control_target,
    shutdown_control,
)
from agentmesh.instrumentation.control._url import control_base_url

__all__ = [
    "EMPTY_DOCUMENT",
    "Backoff",
    "Breaker",
    "ControlClient",
    "ControlDocument",
    "ControlStats",
    "RunAction",
    "RunControl",
    "check_current_run",
    "check_run",
    "configure_control",
    "control_base_url",
    "control_client",
    "control_target",
    "current",
    "open_breakers",
    "shutdown_control",
]
