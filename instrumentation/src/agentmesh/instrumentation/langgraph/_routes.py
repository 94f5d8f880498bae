"""Where a finished node's work goes, and how: read from the writes LangGraph recorded for it.

A task's writes (``task.writes``, filled while it runs) name its successors: a write to the
channel ``branch:to:{node}`` triggers ``node`` in the next superstep (plain edges, conditional
edges and ``Command(goto=…)`` all write there), ``join:{a}+{b}:{node}`` feeds a node waiting on
several sources, and a ``Send`` packet goes to ``__pregel_tasks``. The channel alone does not
tell a plain edge from a conditional one, so the conditional branch's own routing step
(``BranchSpec._finish``) is wrapped to log the destinations it chose into the
:class:`RouteLog` of the node running it; a node's ``Command`` return value names the
``command`` targets.

The ``Send`` packets a finished node hands on are also noted (:class:`Handovers`), to be
compared with what their target task receives; and :func:`graph_state` reads the state the
graph holds (its channels, through LangGraph's ``CONFIG_KEY_READ``), to be compared with the
input a node was given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, cast
from weakref import WeakKeyDictionary

from opentelemetry import context as otel_context
from opentelemetry.context import Context

from agentmesh.instrumentation import _failopen
from agentmesh.instrumentation._patching import Wrapper
from agentmesh.instrumentation.langgraph._execution import (
    HandoffKind,
    Outbound,
    WorkflowExecution,
)

__all__ = [
    "MISSING",
    "Handed",
    "Handovers",
    "RouteLog",
    "branch_finish_wrapper",
    "current_routes",
    "graph_state",
    "handovers_of",
    "outbound_of",
    "state_keys",
    "state_value",
]

_ROUTES_KEY: Final = otel_context.create_key("agentmesh.langgraph.routes")
_BRANCH_TO: Final = "branch:to:"
_JOIN: Final = "join:"
_TASKS: Final = "__pregel_tasks"
_END: Final = "__end__"
_READ: Final = "__pregel_read"
"""LangGraph's ``CONFIG_KEY_READ``: reads the graph's channels for a task."""
MISSING: Final = object()
"""A key the state does not hold."""


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


@dataclass(frozen=True, slots=True)
class Handed:
    """A ``Send`` packet a finished node handed to a target.

    Attributes:
        packet: The packet's argument (the input of the target task).
        digest: Its digest, taken by the sender.
    """

    packet: object
    digest: str


class Handovers:
    """The ``Send`` packets the finished nodes of one execution handed on (thread-safe).

    Each target task takes one (see :func:`handovers_of` for the execution's log).

    Example:
        >>> log = Handovers()
        >>> log.handed("a", "b", Handed({"x": 1}, "sha256:1"))
        >>> log.handed("a", "b", Handed({"x": 2}, "sha256:2"))
        >>> log.take_packet("a", "b", "sha256:2"), log.take_packet("a", "b", "sha256:9")
        (Handed(packet={'x': 2}, digest='sha256:2'), Handed(packet={'x': 1}, digest='sha256:1'))
        >>> log.take_packet("a", "b", "sha256:1") is None
        True
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handed: dict[tuple[str, str], list[Handed]] = {}

    def handed(self, source: str, target: str, handed: Handed) -> None:
        """Note a packet ``source`` handed to ``target``.

        Args:
            source: The agent the work comes from.
            target: The node that will receive it.
            handed: The packet.
        """
        with self._lock:
            self._handed.setdefault((source, target), []).append(handed)

    def take_packet(self, source: str, target: str, digest: str | None) -> Handed | None:
        """Take one packet ``source`` handed to ``target``: one of this digest if any.

        Args:
            source: The agent the work comes from.
            target: The node starting now (one task per packet).
            digest: The digest of what the task received.

        Returns:
            The packet, or ``None`` when none is left.
        """
        with self._lock:
            packets = self._handed.get((source, target))
            if not packets:
                return None
            chosen = next((h for h in packets if h.digest == digest), packets[0])
            packets[:] = [h for h in packets if h is not chosen]
            if not packets:
                del self._handed[(source, target)]
            return chosen


_handovers: WeakKeyDictionary[WorkflowExecution, Handovers] = WeakKeyDictionary()
_handovers_lock = threading.Lock()


def handovers_of(execution: WorkflowExecution) -> Handovers:
    """Return the handover log of an execution (created on first use, gone with it).

    Args:
        execution: The workflow execution.

    Returns:
        Its log.
    """
    with _handovers_lock:
        log = _handovers.get(execution)
        if log is None:
            log = _handovers[execution] = Handovers()
        return log


def state_keys(state: object) -> list[str] | None:
    """Return the keys of a node's input state (a mapping, or a pydantic model's fields).

    Args:
        state: The input.

    Returns:
        The keys, or ``None`` when the input is no keyed state.
    """
    if isinstance(state, Mapping):
        keys = list(cast("Mapping[object, object]", state))
        return [k for k in keys if isinstance(k, str)]
    fields: object = getattr(type(state), "model_fields", None)
    if isinstance(fields, Mapping):
        return [k for k in cast("Mapping[object, object]", fields) if isinstance(k, str)]
    return None


def state_value(state: object, key: str) -> object:
    """Return one key of a state, or :data:`MISSING`.

    Args:
        state: A mapping or an object with attributes.
        key: The key.

    Returns:
        The value.
    """
    if isinstance(state, Mapping):
        return cast("Mapping[str, object]", state).get(key, MISSING)
    return getattr(state, key, MISSING)


def graph_state(config: Mapping[str, Any], keys: list[str]) -> Mapping[str, object] | None:
    """Read the state the graph holds for a task (its channels), as LangGraph reads it.

    Args:
        config: The task's config (holds LangGraph's read function).
        keys: The state keys to read.

    Returns:
        The values (keys without a value are left out), or ``None`` when unreadable.
    """
    configurable = config.get("configurable")
    if not isinstance(configurable, Mapping):
        return None
    read = cast("Mapping[str, object]", configurable).get(_READ)
    if not callable(read):
        return None
    values: object = read(keys, False)
    return cast("Mapping[str, object]", values) if isinstance(values, Mapping) else None
