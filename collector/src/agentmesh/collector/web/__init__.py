"""The collector's web dashboard: runs, a run's graph and timeline, detections, costs, routing.

Served at ``/ui/`` on the OTLP/HTTP port (``web_enabled``); a static page that reads the query
API, so it shows what ``agentmesh runs``, ``graph`` and ``costs`` show, live.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.web.routes import UI_PATH, web_routes

__all__ = ["UI_PATH", "web_routes"]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {"UI_PATH": "agentmesh.collector.web.routes", "web_routes": "agentmesh.collector.web.routes"},
)
