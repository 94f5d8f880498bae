"""A stop is never retried, whatever retry policy the graph sets.

LangGraph's runner retries a failed node by its ``RetryPolicy.retry_on``. The default leaves
:class:`~agentmesh.core.errors.RunStoppedError` alone (it is a ``RuntimeError``), but a policy
such as ``RetryPolicy(retry_on=Exception)`` would run a stopped node's body again, side effects
included, with backoff between tries, each try stopped again. :func:`stop_not_retried` hands the
runner the same task and policies with every ``retry_on`` refusing a stop first; the task is a
copy sharing the original's ``writes``, ``config`` and everything else, so what the runner reads
back from the original is what the node wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, cast

from agentmesh.core.errors import RunStoppedError

__all__ = ["stop_not_retried"]

_GUARDED = "__agentmesh_stop_not_retried__"


def _retries(retry_on: object, exc: Exception) -> bool:
    """Whether a policy's ``retry_on`` retries ``exc``, read as LangGraph reads it."""
    if isinstance(retry_on, Sequence):
        kinds = tuple(cast("Sequence[type[BaseException]]", retry_on))
        return isinstance(exc, kinds)
    if isinstance(retry_on, type):
        return isinstance(exc, retry_on)
    if callable(retry_on):
        return bool(cast("Callable[[Exception], object]", retry_on)(exc))
    return False  # LangGraph raises TypeError for it; never ours to decide


def _guarded(policy: Any) -> Any:
    retry_on = policy.retry_on
    if getattr(retry_on, _GUARDED, False):
        return policy

    def retry_on_unless_stopped(exc: Exception) -> bool:
        return not isinstance(exc, RunStoppedError) and _retries(retry_on, exc)

    setattr(retry_on_unless_stopped, _GUARDED, True)
    return policy._replace(retry_on=retry_on_unless_stopped)


def _policies(policies: object) -> object:
    """The same policies (a sequence, or one policy), each refusing to retry a stop."""
    if policies is None:
        return None
    if hasattr(policies, "_replace") and hasattr(policies, "retry_on"):  # one RetryPolicy
        return _guarded(policies)
    if isinstance(policies, Sequence):
        return [_guarded(policy) for policy in cast("Sequence[Any]", policies)]
    return policies


def _task(task: Any) -> Any:
    own: object = getattr(task, "retry_policy", None)
    if not own:
        return task
    guarded = _policies(own)
    named_replace: object = getattr(task, "_replace", None)
    if callable(named_replace):  # a NamedTuple task (older LangGraph)
        return cast("Callable[..., Any]", named_replace)(retry_policy=guarded)
    if dataclasses.is_dataclass(task) and not isinstance(task, type):
        return dataclasses.replace(task, retry_policy=guarded)
    return task


def stop_not_retried(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Rewrite ``run_with_retry(task, retry_policy, …)``'s arguments so a stop is not retried.

    Args:
        args: The runner's positional arguments (the task, then the graph's policies).
        kwargs: Its keyword arguments.

    Returns:
        The arguments to call it with: the task's own policies and the graph's, guarded.
    """
    if args:
        args = (_task(args[0]), *args[1:])
    elif "task" in kwargs:
        kwargs = {**kwargs, "task": _task(kwargs["task"])}
    if len(args) > 1:
        args = (args[0], _policies(args[1]), *args[2:])
    elif "retry_policy" in kwargs:
        kwargs = {**kwargs, "retry_policy": _policies(kwargs["retry_policy"])}
    return args, kwargs
