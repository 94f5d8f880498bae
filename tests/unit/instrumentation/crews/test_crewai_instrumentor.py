"""The CrewAI instrumentor itself: declared versions, entry point, lazy patching, clean removal."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import wrapt
from crewai.agent import Agent
from crewai.crew import Crew
from crewai.flow.flow import Flow
from crewai.tools.agent_tools.base_agent_tools import BaseAgentTool
from crewai.tools.base_tool import BaseTool, Tool
from crewai.tools.structured_tool import CrewStructuredTool
from opentelemetry.sdk.trace import TracerProvider

from agentmesh.instrumentation.crewai import CrewAIInstrumentor

PATCHED = (
    (Crew, "kickoff"),
    (Crew, "akickoff"),
    (Agent, "execute_task"),
    (Agent, "aexecute_task"),
    (Agent, "kickoff"),
    (Agent, "kickoff_async"),
    (Agent, "akickoff"),
    (BaseTool, "run"),
    (BaseTool, "arun"),
    (Tool, "run"),
    (Tool, "arun"),
    (CrewStructuredTool, "invoke"),
    (CrewStructuredTool, "ainvoke"),
    (BaseAgentTool, "_execute"),
)


def test_declares_supported_versions() -> None:
    assert tuple(CrewAIInstrumentor().instrumentation_dependencies()) == ("crewai >= 1.0",)


def test_registered_as_opentelemetry_instrumentor() -> None:
    (entry_point,) = [
        ep
        for ep in entry_points(group="opentelemetry_instrumentor")
        if ep.name == "agentmesh_crewai"
    ]
    assert entry_point.load() is CrewAIInstrumentor


def test_instrumenting_does_not_import_crewai() -> None:
    code = (
        "import sys\n"
        "from agentmesh.instrumentation.crewai import CrewAIInstrumentor\n"
        "CrewAIInstrumentor().instrument()\n"
        "assert 'crewai' not in sys.modules, 'crewai imported'\n"
        "from crewai import Crew\n"
        "import wrapt\n"
        "assert isinstance(vars(Crew)['kickoff'], wrapt.FunctionWrapper)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_uninstrument_restores_every_original(tracer_provider: TracerProvider) -> None:
    originals = {(cls, name): vars(cls)[name] for cls, name in PATCHED}
    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert all(vars(cls)[name] is not originals[cls, name] for cls, name in PATCHED)
    finally:
        instrumentor.uninstrument()
    assert all(vars(cls)[name] is originals[cls, name] for cls, name in PATCHED)


FLOW_PATCHED = (  # inherited by the public Flow from CrewAI's flow runtime (1.15)
    (Flow, "kickoff_async"),
    (Flow, "_execute_method"),
    (Flow, "_find_triggered_methods"),
    (Flow, "_execute_single_listener"),
)


def test_uninstrument_restores_flow_methods(tracer_provider: TracerProvider) -> None:
    before = {(cls, name): vars(cls).get(name) for cls, name in FLOW_PATCHED}
    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert all(isinstance(vars(cls)[name], wrapt.FunctionWrapper) for cls, name in FLOW_PATCHED)
    finally:
        instrumentor.uninstrument()
    assert {(cls, name): vars(cls).get(name) for cls, name in FLOW_PATCHED} == before
