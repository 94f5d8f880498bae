import inspect
import pickle

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


def test_a_stop_is_a_runtime_error_that_retry_policies_leave_alone() -> None:
    # retry policies that skip programming errors (LangGraph's default retry_on) skip stops too
    stop = core.RunStoppedError("run-1", "ping_pong", "a → b → a", "det-1", "ckpt-1")
    assert isinstance(stop, core.AgentMeshError)
    assert isinstance(stop, RuntimeError)
    copy = pickle.loads(pickle.dumps(stop))  # a stop crosses process pools intact
    assert type(copy) is core.RunStoppedError
    assert (copy.run_id, copy.detection_id, copy.resume_checkpoint_id, str(copy)) == (
        "run-1",
        "det-1",
        "ckpt-1",
        str(stop),
    )
