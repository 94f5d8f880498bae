"""Resuming a LangGraph run from a resume plan: claim the plan, then rewrite the run's call.

When a plan waits for this thread (:func:`agentmesh.instrumentation.resume.claim_langgraph`),
the run continues where the failed or stopped one broke, as LangGraph itself resumes:

- **The plan's checkpoint is the thread's newest** (the usual case for a failed run: a step
  that fails writes no checkpoint): the input becomes ``None`` and the config is left as it
  is. LangGraph continues from that checkpoint *with its pending writes*, so the parallel
  branches and subgraph steps that completed before the failure are not run again. Naming the
  checkpoint would make it a replay, which drops those writes and runs them again.
- **An older checkpoint** (a stopped loop resumes before the loop; another run moved the
  thread on): the config also names it (``configurable.checkpoint_id``) and LangGraph forks
  from there.
- **The checkpoint is not in the graph's checkpointer**, or the graph has none: the call
  raises :class:`~agentmesh.core.ResumeError` saying so. Starting over instead would run the
  completed steps again, and LangGraph, given no input, fails with ``EmptyInputError``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from agentmesh.core.errors import ResumeError
from agentmesh.instrumentation.resume import ResumeTarget, claim_langgraph

__all__ = ["ResumeCall", "aresume_call", "claim_plan", "replay_call", "resume_call"]

_CHECKPOINTER: Final = "__pregel_checkpointer"


@dataclass(frozen=True, slots=True)
class ResumeCall:
    """A run's call rewritten to resume.

    Attributes:
        args: ``stream``'s positional arguments.
        kwargs: Its keyword arguments.
    """

    args: tuple[Any, ...]
    kwargs: dict[str, Any]


def claim_plan(config: Mapping[str, object]) -> ResumeTarget | None:
    """Take the plan waiting for this run's thread, if any (a plan is used once).

    Args:
        config: The run's config as the caller gave it.

    Returns:
        The plan, or ``None``.
    """
    configurable = config.get("configurable")
    if not isinstance(configurable, Mapping):
        return None
    thread = cast("Mapping[str, object]", configurable).get("thread_id")
    return claim_langgraph(str(thread) if thread is not None else None)


def resume_call(
    graph: object,
    target: ResumeTarget,
    checkpoint_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    config: Mapping[str, object],
) -> ResumeCall:
    """Rewrite a sync run's call to continue from ``checkpoint_id``.

    Args:
        graph: The compiled graph being run.
        target: The plan.
        checkpoint_id: Its checkpoint.
        args: ``stream``'s positional arguments (input, config…).
        kwargs: Its keyword arguments.
        config: The run's config as the caller gave it.

    Returns:
        The call to make.

    Raises:
        ResumeError: The checkpoint is not in the graph's checkpointer, or it has none.
    """
    saver = _saver(graph, config, target, checkpoint_id)
    get = cast("Callable[[Mapping[str, object]], object]", saver.get_tuple)
    latest = get(_thread_config(config))
    found = latest if _id_of(latest) == checkpoint_id else get(_at(config, checkpoint_id))
    return _rewrite(target, checkpoint_id, args, kwargs, config, latest, found)


async def aresume_call(
    graph: object,
    target: ResumeTarget,
    checkpoint_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    config: Mapping[str, object],
) -> ResumeCall:
    """Rewrite an async run's call to continue from ``checkpoint_id`` (see :func:`resume_call`).

    Args:
        graph: The compiled graph being run.
        target: The plan.
        checkpoint_id: Its checkpoint.
        args: ``astream``'s positional arguments (input, config…).
        kwargs: Its keyword arguments.
        config: The run's config as the caller gave it.

    Returns:
        The call to make.

    Raises:
        ResumeError: The checkpoint is not in the graph's checkpointer, or it has none.
    """
    saver = _saver(graph, config, target, checkpoint_id)
    get = cast("Callable[[Mapping[str, object]], Awaitable[object]]", saver.aget_tuple)
    latest = await get(_thread_config(config))
    found = latest if _id_of(latest) == checkpoint_id else await get(_at(config, checkpoint_id))
    return _rewrite(target, checkpoint_id, args, kwargs, config, latest, found)


def _saver(
    graph: object, config: Mapping[str, object], target: ResumeTarget, checkpoint_id: str
) -> Any:
    saver: object = _configurable(config).get(_CHECKPOINTER) or getattr(graph, "checkpointer", None)
    if saver is None or isinstance(saver, bool) or not hasattr(saver, "get_tuple"):
        raise ResumeError(
            f"cannot resume run {target.run_id} from checkpoint {checkpoint_id}: this graph has "
            "no checkpointer. LangGraph resumes a run from its checkpointer's checkpoints; "
            "compile the graph with one (checkpointer=...) to make its runs resumable"
        )
    return saver


def _rewrite(
    target: ResumeTarget,
    checkpoint_id: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    config: Mapping[str, object],
    latest: object,
    found: object,
) -> ResumeCall:
    if found is None:
        thread = _configurable(config).get("thread_id")
        raise ResumeError(
            f"cannot resume run {target.run_id}: checkpoint {checkpoint_id} of thread "
            f"{thread!r} is not in this graph's checkpointer: was the thread deleted or "
            "pruned since (`agentmesh checkpoints delete/prune`), or the run checkpointed to "
            "another store or database? resume it with the checkpointer it ran with"
        )
    if found is not latest:
        return replay_call(checkpoint_id, args, kwargs, config)
    return _with(args, kwargs, config)


def replay_call(
    checkpoint_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], config: Mapping[str, object]
) -> ResumeCall:
    """The call that forks from ``checkpoint_id``: no input, the config naming the checkpoint.

    Args:
        checkpoint_id: The checkpoint.
        args: ``stream``'s positional arguments (input, config…).
        kwargs: Its keyword arguments.
        config: The run's config as the caller gave it.

    Returns:
        The call to make.
    """
    named = {**config, "configurable": {**_configurable(config), "checkpoint_id": checkpoint_id}}
    return _with(args, kwargs, named)


def _with(
    args: tuple[Any, ...], kwargs: dict[str, Any], config: Mapping[str, object]
) -> ResumeCall:
    new_args = list(args)
    new_kwargs = dict(kwargs)
    if "input" in new_kwargs or not new_args:
        new_kwargs["input"] = None
    else:
        new_args[0] = None
    if "config" in new_kwargs or len(new_args) < 2:
        new_kwargs["config"] = config
    else:
        new_args[1] = config
    return ResumeCall(tuple(new_args), new_kwargs)


def _configurable(config: Mapping[str, object]) -> Mapping[str, object]:
    section = config.get("configurable")
    return cast("Mapping[str, object]", section) if isinstance(section, Mapping) else {}


def _thread_config(config: Mapping[str, object]) -> dict[str, object]:
    thread = _configurable(config).get("thread_id")
    return {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}


def _at(config: Mapping[str, object], checkpoint_id: str) -> dict[str, object]:
    thread = _configurable(config).get("thread_id")
    return {
        "configurable": {"thread_id": thread, "checkpoint_ns": "", "checkpoint_id": checkpoint_id}
    }


def _id_of(found: object) -> object:
    checkpoint: object = getattr(found, "checkpoint", None)
    if not isinstance(checkpoint, Mapping):
        return None
    return cast("Mapping[str, object]", checkpoint).get("id")
