import importlib
import inspect

import pytest

PACKAGES = [
    "agentmesh.core",
    "agentmesh.router",
    "agentmesh.checkpoint",
    "agentmesh.checkpoint.store",
    "agentmesh.checkpoint.langgraph",
    "agentmesh.checkpoint.crewai",
    "agentmesh.instrumentation",
    "agentmesh.collector",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_public_surface_is_curated_and_documented(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported, f"{name} exports nothing"
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"
        obj = getattr(module, attr)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, f"{name}.{attr} has no docstring"


def test_agentmesh_is_a_namespace_package() -> None:
    import agentmesh

    assert getattr(agentmesh, "__file__", None) is None
    assert len(list(agentmesh.__path__)) == 5
