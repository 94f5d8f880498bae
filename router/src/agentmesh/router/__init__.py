"""AgentMesh router: the model catalog and, as it grows, the policies that pick a model.

Example:
    >>> from agentmesh.router import default_catalog
    >>> default_catalog().get("openai/gpt-4o-mini").provider
    'openai'
"""

from agentmesh.router.catalog import ModelCatalog, ModelInfo, RouterSettings, default_catalog

__all__ = ["ModelCatalog", "ModelInfo", "RouterSettings", "default_catalog"]
