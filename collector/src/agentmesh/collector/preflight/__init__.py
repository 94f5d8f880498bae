"""Preflight checks: what a collector with given settings needs, checked without starting it.

``agentmesh check`` (the same flags and variables as ``agentmesh collector``) runs
:func:`run_checks` and prints one :class:`Finding` per check.
"""

from agentmesh.collector.preflight.finding import Finding, Verdict
from agentmesh.collector.preflight.run import run_checks

__all__ = ["Finding", "Verdict", "run_checks"]
