"""Graph rules that detect failures in runs while they are still going."""

from agentmesh.collector.detectors.base import Rule
from agentmesh.collector.detectors.handoff_loop import HANDOFF_LOOP, HandoffLoopRule

__all__ = ["HANDOFF_LOOP", "HandoffLoopRule", "Rule"]
