"""The hook in CrewAI's task execution that task checkpoints use: :func:`install`.

One patch point, CrewAI's ``Task._execute_core`` (every synchronous execution of a task by a
crew goes through it: ``Task.execute_sync`` and the threads of ``Task.execute_async``, in the
sequential and the hierarchical process) and its native async twin ``Task._aexecute_core``
(``Crew.akickoff``). Both exist, with the signature ``(self, agent, context, tools)``,
throughout CrewAI 1.x.

The patched methods look the task up in a registry of handlers (by the task's id) and do
nothing else for a task without one: only tasks of a crew attached to
:class:`~agentmesh.checkpoint.crewai.CrewCheckpoints` are affected. For those, the handler may
give back a stored output (the task is not run: no agent, no LLM call, no callbacks, no events)
and is told of every output the task produced.

The patch is installed while an attachment is active (reference counted), or from
:func:`install` to :func:`uninstall`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from agentmesh.core.log import get_logger

if TYPE_CHECKING:
    from crewai import Task
    from crewai.tasks.task_output import TaskOutput

__all__ = ["TaskHandler", "acquire", "install", "installed", "register", "release", "uninstall"]

_log = get_logger(__name__)

_SYNC_METHOD = "_execute_core"
_ASYNC_METHOD = "_aexecute_core"


class TaskHandler(Protocol):
    """What the hook asks about a registered task."""

    def restore(self, task: Task) -> TaskOutput | None:
        """The stored output to use instead of running the task, if any."""
        ...

    def save(self, task: Task, output: TaskOutput) -> None:
        """Record the output the task just produced."""
        ...

    async def arestore(self, task: Task) -> TaskOutput | None:
        """:meth:`restore`, from the crew's event loop."""
        ...

    async def asave(self, task: Task, output: TaskOutput) -> None:
        """:meth:`save`, from the crew's event loop."""
        ...


_lock = threading.RLock()
_handlers: dict[str, TaskHandler] = {}
_originals: dict[str, Callable[..., Any]] = {}
_users = 0
_explicit = False


def _handler(task: object) -> TaskHandler | None:
    if not _handlers:
        return None
    task_id = getattr(task, "id", None)
    return _handlers.get(str(task_id)) if task_id is not None else None


def _sync_wrapper(original: Callable[..., TaskOutput]) -> Callable[..., TaskOutput]:
    @functools.wraps(original)
    def execute_core(self: Task, *args: Any, **kwargs: Any) -> TaskOutput:
        handler = _handler(self)
        if handler is None:
            return original(self, *args, **kwargs)
        restored = handler.restore(self)
        if restored is not None:
            return restored
        output = original(self, *args, **kwargs)
        handler.save(self, output)
        return output

    setattr(execute_core, "__agentmesh_checkpoint_hook__", True)  # noqa: B010
    return execute_core


def _async_wrapper(
    original: Callable[..., Awaitable[TaskOutput]],
) -> Callable[..., Awaitable[TaskOutput]]:
    @functools.wraps(original)
    async def aexecute_core(self: Task, *args: Any, **kwargs: Any) -> TaskOutput:
        handler = _handler(self)
        if handler is None:
            return await original(self, *args, **kwargs)
        restored = await handler.arestore(self)
        if restored is not None:
            return restored
        output = await original(self, *args, **kwargs)
        await handler.asave(self, output)
        return output

    setattr(aexecute_core, "__agentmesh_checkpoint_hook__", True)  # noqa: B010
    return aexecute_core


def _patch() -> None:
    from crewai import Task

    for name, wrap in (
        (_SYNC_METHOD, _sync_wrapper),
        (_ASYNC_METHOD, _async_wrapper),
    ):
        current = cast(Callable[..., Any] | None, Task.__dict__.get(name))
        if current is None:
            if name == _SYNC_METHOD:
                from agentmesh.core.errors import ConfigError

                raise ConfigError(
                    f"this CrewAI version has no Task.{name}: task checkpoints cannot hook it"
                )
            continue
        _originals[name] = current
        setattr(Task, name, wrap(current))


def _unpatch() -> None:
    from crewai import Task

    for name, original in list(_originals.items()):
        current = Task.__dict__.get(name)
        if getattr(current, "__wrapped__", None) is original:
            setattr(Task, name, original)
        else:  # wrapped again on top of ours: ours stays, a pass-through without handlers
            _log.warning("crewai_task_hook_not_removed", method=name)
        del _originals[name]


def _sync_state() -> None:
    wanted = _explicit or _users > 0
    if wanted and not _originals:
        _patch()
    elif not wanted and _originals:
        _unpatch()


def installed() -> bool:
    """Whether the hook is in place.

    Returns:
        ``True`` while CrewAI's ``Task._execute_core`` is wrapped.
    """
    with _lock:
        return bool(_originals)


def install() -> None:
    """Install the hook until :func:`uninstall` (attachments otherwise install it themselves).

    Raises:
        ConfigError: The installed CrewAI has no ``Task._execute_core``.
    """
    global _explicit
    with _lock:
        _explicit = True
        _sync_state()


def uninstall() -> None:
    """Remove the hook installed by :func:`install` (it stays while an attachment is active)."""
    global _explicit
    with _lock:
        _explicit = False
        _sync_state()


def acquire() -> None:
    """Install the hook for an attachment (reference counted).

    Raises:
        ConfigError: The installed CrewAI has no ``Task._execute_core``.
    """
    global _users
    with _lock:
        _users += 1
        try:
            _sync_state()
        except BaseException:
            _users -= 1
            raise


def release() -> None:
    """Drop an attachment's reference; the last one removes the hook (unless installed)."""
    global _users
    with _lock:
        _users = max(0, _users - 1)
        _sync_state()


def register(task_ids: list[str], handler: TaskHandler | None) -> None:
    """Route the given tasks to a handler (``None``: forget them).

    Args:
        task_ids: The tasks' ids (``str(task.id)``).
        handler: The handler, or ``None`` to unregister.

    Raises:
        ConfigError: A task is attached to another handler already.
    """
    with _lock:
        if handler is not None:
            for task_id in task_ids:
                other = _handlers.get(task_id)
                if other is not None and other is not handler:
                    from agentmesh.core.errors import ConfigError

                    raise ConfigError(
                        f"task {task_id} is already attached to task checkpoints; a crew "
                        "can be attached once at a time"
                    )
        for task_id in task_ids:
            if handler is None:
                _handlers.pop(task_id, None)
            else:
                _handlers[task_id] = handler
