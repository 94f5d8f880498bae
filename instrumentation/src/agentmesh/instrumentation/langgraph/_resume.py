"""Resuming a LangGraph run from a resume plan: rewrite the outermost run's input and config.

When a plan waits for this thread (:func:`agentmesh.instrumentation.resume.claim_langgraph`),
the run's input becomes ``None`` and its config names the plan's checkpoint
(``configurable.checkpoint_id``): LangGraph then continues from that checkpoint, running only
the steps that had not completed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from agentmesh.instrumentation.resume import ResumeTarget, claim_langgraph

__all__ = ["resumed_call"]


def resumed_call(
    args: tuple[Any, ...], kwargs: dict[str, Any], config: Mapping[str, object]
) -> tuple[tuple[Any, ...], dict[str, Any], ResumeTarget | None]:
    """Rewrite a run's call when a resume plan waits for its thread.

    Args:
        args: ``stream``'s positional arguments (input, config…).
        kwargs: Its keyword arguments.
        config: The run's config as the caller gave it.

    Returns:
        The arguments to call with, and the plan used (``None``: the call is unchanged).
    """
    configurable = config.get("configurable")
    if not isinstance(configurable, Mapping):
        return args, kwargs, None
    section = cast("Mapping[str, object]", configurable)
    thread = section.get("thread_id")
    target = claim_langgraph(str(thread) if thread is not None else None)
    if target is None or target.checkpoint_id is None:
        return args, kwargs, target
    new_config = {
        **config,
        "configurable": {**section, "checkpoint_id": target.checkpoint_id},
    }
    new_args = list(args)
    new_kwargs = dict(kwargs)
    if "input" in new_kwargs or not new_args:
        new_kwargs["input"] = None
    else:
        new_args[0] = None
    if "config" in new_kwargs or len(new_args) < 2:
        new_kwargs["config"] = new_config
    else:
        new_args[1] = new_config
    return tuple(new_args), new_kwargs, target
