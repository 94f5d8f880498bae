"""AgentMesh router: the model catalog, routing requests, policies and their decisions.

The learned parts (prompt hashing and clusters, the quality model, offline training) live in
:mod:`agentmesh.router.learned`; :class:`UtilityPolicy` decides with them, from the route table.

Example:
    >>> from agentmesh.router import default_catalog
    >>> default_catalog().get("openai/gpt-4o-mini").provider
    'openai'
"""

from typing import TYPE_CHECKING

from agentmesh.core.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "BUNDLED_TABLE": "agentmesh.router.table",
        "DecisionLog": "agentmesh.router.decision_log",
        "FallbackChains": "agentmesh.router.chains",
        "ModelCatalog": "agentmesh.router.catalog",
        "ModelInfo": "agentmesh.router.catalog",
        "ModelStats": "agentmesh.router.table",
        "PassThroughPolicy": "agentmesh.router.policy",
        "PinnedPolicy": "agentmesh.router.policy",
        "Pins": "agentmesh.router.policy",
        "PromptFeatures": "agentmesh.router.request",
        "RouteDecision": "agentmesh.router.decision",
        "RouteMode": "agentmesh.router.request",
        "RouteRequest": "agentmesh.router.request",
        "RouteTable": "agentmesh.router.table",
        "RouterSettings": "agentmesh.router.catalog",
        "RoutingPolicy": "agentmesh.router.policy",
        "Tradeoff": "agentmesh.router.table",
        "UtilityPolicy": "agentmesh.router.utility",
        "default_catalog": "agentmesh.router.catalog",
        "new_decision_id": "agentmesh.router.decision",
        "prompt_features": "agentmesh.router.request",
        "prompt_text": "agentmesh.router.request",
        "reachable": "agentmesh.router.chains",
        "text_chars_of": "agentmesh.router.policy",
    },
)
