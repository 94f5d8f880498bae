"""The ``agentmesh`` command line: ``agentmesh collector`` and ``agentmesh demo``."""

from agentmesh.collector.cli.main import main

__all__ = ["main"]
