"""AgentMesh router: the model catalog, routing requests, policies and their decisions.

Example:
    >>> from agentmesh.router import default_catalog
    >>> default_catalog().get("openai/gpt-4o-mini").provider
    'openai'
"""

from agentmesh.router.catalog import ModelCatalog, ModelInfo, RouterSettings, default_catalog
from agentmesh.router.chains import FallbackChains, reachable
from agentmesh.router.decision import RouteDecision, new_decision_id
from agentmesh.router.decision_log import DecisionLog
from agentmesh.router.policy import PassThroughPolicy, PinnedPolicy, Pins, RoutingPolicy
from agentmesh.router.request import PromptFeatures, RouteMode, RouteRequest, prompt_features

__all__ = [
    "DecisionLog",
    "FallbackChains",
    "ModelCatalog",
    "ModelInfo",
    "PassThroughPolicy",
    "PinnedPolicy",
    "Pins",
    "PromptFeatures",
    "RouteDecision",
    "RouteMode",
    "RouteRequest",
    "RouterSettings",
    "RoutingPolicy",
    "default_catalog",
    "new_decision_id",
    "prompt_features",
    "reachable",
]
