"""``agentmesh demo``: the whole loop in one command, offline.

:func:`run_demo` starts the bundled fake provider and the collector on free loopback ports, runs
the LangGraph supervisor app (:mod:`agentmesh.collector.demo.supervisor_app`) under
``agentmesh-instrument`` once cleanly and once with an injected handoff loop, and returns what
the collector made of it; :func:`render_report` prints that for a person.
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
    from agentmesh.collector.demo.report import render_report
    from agentmesh.collector.demo.runner import AppRun, DemoReport, DemoRunReport, run_demo

__all__ = ["AppRun", "DemoReport", "DemoRunReport", "render_report", "run_demo"]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "AppRun": "agentmesh.collector.demo.runner",
        "DemoReport": "agentmesh.collector.demo.runner",
        "DemoRunReport": "agentmesh.collector.demo.runner",
        "render_report": "agentmesh.collector.demo.report",
        "run_demo": "agentmesh.collector.demo.runner",
    },
)
