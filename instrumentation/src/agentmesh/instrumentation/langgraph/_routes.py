"""Where a finished node's work goes, and how: read from the writes LangGraph recorded for it.

A task's writes (``task.writes``, filled while it runs) name its successors: a write to the
channel ``branch:to:{node}`` triggers ``node`` in the next superstep (plain edges, conditional
edges and ``Command(goto=…)`` all write there), ``join:{a}+{b}:{node}`` feeds a node waiting on
several sources, and a ``Send`` packet goes to ``__pregel_tasks``. The channel alone does not
tell a plain edge from a conditional one, so the conditional branch's own routing step
(``BranchSpec._finish``) is wrapped to log the destinations it chose into the
:class:`RouteLog` of the node running it; a node's ``Command`` return value names the
``command`` targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import cache
from typing import Any, Final, cast

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.langgraph._execution import HandoffKind, Outbound

__all__ = ["RouteLog", "branch_finish_wrapper", "current_routes", "outbound_of"]

_ROUTES_KEY: Final = otel_context.create_key("agentmesh.langgraph.routes")
_BRANCH_TO: Final = "branch:to:"
_JOIN: Final = "join:"
_TASKS: Final = "__pregel_tasks"
_END: Final = "__end__"


class RouteLog:
    """What one node execution decided about its successors (filled while it runs).

    Args:
        parent: The route log of the node this one runs inside (for a subgraph's nodes).

    Example:
        >>> log = RouteLog()
        >>> log.conditional_to(["worker"])
        >>> sorted(log.conditional)
        ['worker']
    """

    def __init__(self, parent: RouteLog | None = None) -> None:
        self.parent = parent
        self.conditional: set[str] = set()
        self.commands: set[str] = set()

    def conditional_to(self, targets: Iterable[str]) -> None:
        """Record targets a conditional edge chose.

        Args:
            targets: Node names.
        """
        self.conditional.update(targets)

    def commanded_to(self, targets: Iterable[str]) -> None:
        """Record targets a ``Command(goto=…)`` named.

        Args:
            targets: Node names.
        """
        self.commands.update(targets)

    def into(self, context: Context) -> Context:
        """Return ``context`` carrying this log.

        Args:
            context: The context to extend.

        Returns:
            The new context.
        """
        return otel_context.set_value(_ROUTES_KEY, self, context)


def current_routes(context: Context | None = None) -> RouteLog | None:
    """Return the route log of the node running now, if any.

    Args:
        context: The context to read; the current one by default.

    Returns:
        The log, or ``None`` outside an instrumented node.
    """
    value = otel_context.get_value(_ROUTES_KEY, context)
    return value if isinstance(value, RouteLog) else None


@cache
def _send_type() -> type | None:
    try:
        from langgraph.types import Send
    except ImportError:
        return None
    return Send


@cache
def _command_type() -> type | None:
    try:
        from langgraph.types import Command
    except ImportError:
        return None
    return Command


def goto_targets(result: object) -> list[str]:
    """Return the node names a node's ``Command`` return value (or list of them) goes to.

    Args:
        result: What the node returned.

    Returns:
        Target names; ``Send`` targets and ``END`` are left out.
    """
    command = _command_type()
    if command is None:
        return []
    items: list[object] = (
        list(cast("list[object] | tuple[object, ...]", result))
        if isinstance(result, list | tuple)
        else [result]
    )
    targets: list[str] = []
    for item in items:
        if not isinstance(item, command):
            continue
        if getattr(item, "graph", None) is not None:
            continue  # addressed to another graph: handled where it lands
        goto: object = getattr(item, "goto", None)
        gotos: list[object] = (
            list(cast("list[object] | tuple[object, ...]", goto))
            if isinstance(goto, list | tuple)
            else [goto]
        )
        targets.extend(g for g in gotos if isinstance(g, str) and g != _END)
    return targets


def parent_command_targets(error: BaseException) -> list[str]:
    """Return the targets of a ``Command(graph=Command.PARENT, goto=…)`` bubbling up.

    Args:
        error: The exception a node raised (LangGraph's ``ParentCommand``).

    Returns:
        Target names, or an empty list when it is no parent command.
    """
    command = _command_type()
    args = error.args
    if command is None or not args or not isinstance(args[0], command):
        return []
    goto: object = getattr(args[0], "goto", None)
    gotos: list[object] = (
        list(cast("list[object] | tuple[object, ...]", goto))
        if isinstance(goto, list | tuple)
        else [goto]
    )
    return [g for g in gotos if isinstance(g, str) and g != _END]


def _kind(target: str, routes: RouteLog, commands: set[str]) -> HandoffKind:
    if target in commands:
        return "command"
    if target in routes.conditional:
        return "conditional"
    return "edge"


def outbound_of(writes: Iterable[object], result: object, routes: RouteLog) -> list[Outbound]:
    """Read a finished task's successors from its writes.

    Args:
        writes: The task's ``(channel, value)`` writes.
        result: What the node returned.
        routes: What its conditional edges and commands chose.

    Returns:
        One entry per target node (in write order), one per ``Send`` packet.
    """
    send = _send_type()
    commands = routes.commands | set(goto_targets(result))
    found: list[Outbound] = []
    seen: set[str] = set()
    for write in writes:
        if not isinstance(write, tuple):
            continue
        pair = cast("tuple[object, ...]", write)
        if len(pair) != 2 or not isinstance(pair[0], str):
            continue
        channel, value = pair[0], pair[1]
        if channel == _TASKS:
            if send is not None and isinstance(value, send):
                node: object = getattr(value, "node", None)
                if isinstance(node, str):
                    found.append(Outbound(node, "send", getattr(value, "arg", None)))
            continue
        if channel.startswith(_BRANCH_TO):
            target = channel[len(_BRANCH_TO) :]
        elif channel.startswith(_JOIN):
            target = channel.rsplit(":", 1)[-1]
        else:
            continue
        if target and target not in seen:
            seen.add(target)
            found.append(Outbound(target, _kind(target, routes, commands)))
    return found


def _destinations(instance: object, result: object) -> list[str]:
    ends: object = getattr(instance, "ends", None)
    items: list[object] = (
        list(cast("list[object] | tuple[object, ...]", result))
        if isinstance(result, list | tuple)
        else [result]
    )
    names: list[str] = []
    for item in items:
        name: object = item
        if isinstance(ends, Mapping):
            try:
                name = cast("Mapping[object, object]", ends).get(item, item)
            except TypeError:  # an unhashable destination (a Send) is no node name
                continue
        if isinstance(name, str) and name != _END:
            names.append(name)
    return names


def _record_branch(instance: object, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    routes = current_routes()
    if routes is None:
        return
    result: object = args[2] if len(args) > 2 else kwargs.get("result")
    routes.conditional_to(_destinations(instance, result))


def branch_finish_wrapper() -> Wrapper:
    """Build the wrapper of ``BranchSpec._finish`` (a conditional edge's routing step).

    Returns:
        A wrapt wrapper that logs the chosen destinations into the running node's
        :class:`RouteLog`.
    """

    def wrapper(
        wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        result = wrapped(*args, **kwargs)
        _failopen.safe_call("langgraph.branch", _record_branch, instance, args, kwargs)
        return result

    return wrapper
