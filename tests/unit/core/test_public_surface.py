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
LAZY_SUBPACKAGES = [
    "agentmesh.router.learned",
    "agentmesh.collector.api",
    "agentmesh.collector.demo",
    "agentmesh.collector.detectors",
    "agentmesh.collector.events",
    "agentmesh.collector.forward",
    "agentmesh.collector.graph",
    "agentmesh.collector.hot_state",
    "agentmesh.collector.normalize",
    "agentmesh.collector.receiver",
    "agentmesh.collector.recovery",
    "agentmesh.collector.resume",
    "agentmesh.collector.routing",
    "agentmesh.collector.store",
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


@pytest.mark.parametrize("name", PACKAGES + LAZY_SUBPACKAGES)
def test_lazy_exports_resolve_list_and_refuse_unknown_names(name: str) -> None:
    module = importlib.import_module(name)
    listed = dir(module)
    for attr in module.__all__:
        assert attr in listed, f"{name}.{attr} is missing from dir()"
        value = getattr(module, attr)
        assert value is not None
        assert vars(module)[attr] is value, f"{name}.{attr} is not kept after loading"
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        _ = module.no_such_name
