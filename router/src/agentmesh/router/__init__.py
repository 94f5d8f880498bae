"""AgentMesh router: the model catalog, routing requests, policies and their decisions.

The learned parts (prompt hashing and clusters, the quality model, offline training) live in
:mod:`agentmesh.router.learned`; :class:`UtilityPolicy` decides with them, from the route table.

Example:
    >>> from agentmesh.router import default_catalog
    >>> default_catalog().get("openai/gpt-4o-mini").provider
    'openai'
"""

from agentmesh.router.catalog import ModelCatalog, ModelInfo, RouterSettings, default_catalog
from agentmesh.router.chains import FallbackChains, reachable
from agentmesh.router.decision import RouteDecision, new_decision_id
from agentmesh.router.decision_log import DecisionLog
from agentmesh.router.policy import (
    PassThroughPolicy,
    PinnedPolicy,
    Pins,
    RoutingPolicy,
    text_chars_of,
)
from agentmesh.router.request import (
    PromptFeatures,
    RouteMode,
    RouteRequest,
    prompt_features,
    prompt_text,
)
from agentmesh.router.table import BUNDLED_TABLE, ModelStats, RouteTable, Tradeoff
from agentmesh.router.utility import UtilityPolicy

__all__ = [
    "BUNDLED_TABLE",
    "DecisionLog",
    "FallbackChains",
    "ModelCatalog",
    "ModelInfo",
    "ModelStats",
    "PassThroughPolicy",
    "PinnedPolicy",
    "Pins",
    "PromptFeatures",
    "RouteDecision",
    "RouteMode",
    "RouteRequest",
    "RouteTable",
    "RouterSettings",
    "RoutingPolicy",
    "Tradeoff",
    "UtilityPolicy",
    "default_catalog",
    "new_decision_id",
    "prompt_features",
    "prompt_text",
    "reachable",
    "text_chars_of",
]
