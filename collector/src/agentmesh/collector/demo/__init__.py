"""``agentmesh demo``: the whole loop in one command, offline.

:func:`run_demo` starts the bundled fake provider and the collector on free loopback ports, runs
the LangGraph supervisor app (:mod:`agentmesh.collector.demo.supervisor_app`) under
``agentmesh-instrument`` once cleanly and once with an injected handoff loop, and returns what
the collector made of it; :func:`render_report` prints that for a person.
"""

from agentmesh.collector.demo.report import render_report
from agentmesh.collector.demo.runner import AppRun, DemoReport, DemoRunReport, run_demo

__all__ = ["AppRun", "DemoReport", "DemoRunReport", "render_report", "run_demo"]
