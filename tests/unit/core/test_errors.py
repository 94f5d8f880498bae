import inspect

import agentmesh.core as core
from agentmesh.core import errors


def test_every_error_derives_from_the_root() -> None:
    classes = [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == errors.__name__
    ]
    assert len(classes) >= 8
    for cls in classes:
        assert issubclass(cls, core.AgentMeshError), cls


def test_tree_drawn_in_the_docstring_names_every_error() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, f"{name} missing from the tree in errors.py's docstring"


def test_collector_errors_nest() -> None:
    assert issubclass(core.StoreError, core.CollectorError)
    assert issubclass(core.ReceiverError, core.CollectorError)
    assert not issubclass(core.ConfigError, core.CollectorError)
