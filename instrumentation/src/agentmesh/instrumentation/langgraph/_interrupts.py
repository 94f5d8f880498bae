"""Tell LangGraph's control-flow exceptions (interrupts, commands to a parent graph) from errors.

LangGraph stops a node with exceptions that are not failures: ``GraphInterrupt`` when the
node called ``interrupt()`` (the run waits for input and resumes later with
``Command(resume=…)``), ``ParentCommand`` when a subgraph's node sends a ``Command`` to its
parent graph, and other ``GraphBubbleUp`` subclasses. Spans record none of them as errors.
"""

from __future__ import annotations

from enum import Enum
from functools import cache

__all__ = ["BubbleUp", "classify"]


class BubbleUp(Enum):
    """A LangGraph control-flow exception."""

    INTERRUPT = "interrupt"
    PARENT_COMMAND = "parent_command"
    OTHER = "other"


@cache
def _types() -> tuple[type[BaseException], type[BaseException], type[BaseException]] | None:
    try:
        from langgraph.errors import GraphBubbleUp, GraphInterrupt, ParentCommand
    except ImportError:
        return None
    return GraphInterrupt, ParentCommand, GraphBubbleUp


def classify(error: BaseException) -> BubbleUp | None:
    """Classify an exception raised through a graph.

    Args:
        error: The exception.

    Returns:
        Which control-flow exception it is, or ``None`` for a real error.
    """
    types = _types()
    if types is None:
        return None
    interrupt, parent_command, bubble_up = types
    if isinstance(error, interrupt):
        return BubbleUp.INTERRUPT
    if isinstance(error, parent_command):
        return BubbleUp.PARENT_COMMAND
    if isinstance(error, bubble_up):
        return BubbleUp.OTHER
    return None
