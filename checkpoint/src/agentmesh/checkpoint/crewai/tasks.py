"""Task-level checkpoints for CrewAI crews, and resume: :class:`CrewCheckpoints`.

After each task of an attached crew completes, its ``TaskOutput`` is stored as a checkpoint
(thread = the run id, namespace ``crewai.tasks``). When the same crew is kicked off again for
the same run id, the tasks whose outputs are stored are not run again: their stored output is
given back (no agent, no LLM call), and the crew carries on after the last completed task,
handing the stored outputs to later tasks as context exactly as CrewAI does for outputs it just
produced::

    checkpoints = CrewCheckpoints("redis://localhost:6379/0")
    try:
        checkpoints.kickoff(crew, run_id="nightly-2026-12-02", inputs={"topic": "otters"})
    except Exception:
        ...  # fix the cause, then, maybe in another process, with a crew built the same way:
    checkpoints.kickoff(crew, run_id="nightly-2026-12-02", inputs={"topic": "otters"})

or, to see the run id chosen (given, else the AgentMesh run id in baggage, else a new one)::

    with checkpoints.attach(crew) as run:
        crew.kickoff()
    run.run_id

Which outputs belong to which task: the crew's key (``crew_key``, by default CrewAI's
``Crew.key``, a digest of its agents and tasks), the task's position in ``crew.tasks``, CrewAI's
``Task.key`` (a digest of its original description and expected output) and a digest of the
description as run (inputs interpolated: other inputs, other outputs) must all match. Once a
task of a kickoff runs for real, no later task is restored (their stored outputs were made from
other context). Works for the sequential and the hierarchical process, with
``kickoff`` and ``akickoff``; tasks with ``async_execution`` are checkpointed too. Not for
``Crew.replay`` (an attached crew would restore the tasks replay is meant to run again), nor
for ``kickoff_for_each`` (it runs copies of the crew, whose tasks are not attached).

The hook is CrewAI's ``Task._execute_core`` / ``Task._aexecute_core``, wrapped only while an
attachment is active (or from :meth:`CrewCheckpoints.install` to
:meth:`CrewCheckpoints.uninstall`); tasks of crews that are not attached are not affected.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from agentmesh.checkpoint.crewai import _task_hooks
from agentmesh.checkpoint.crewai._bridge import StoreBridge
from agentmesh.checkpoint.crewai._ids import new_checkpoint_id
from agentmesh.checkpoint.crewai._policy import OnError, check_on_error, read_failed, write_failed
from agentmesh.checkpoint.crewai._run_id import baggage_run_id
from agentmesh.checkpoint.crewai._serde import as_document, dump_blob, load_blob
from agentmesh.checkpoint.crewai._task_output import (
    FORMAT,
    description_digest,
    output_document,
    output_from_document,
)
from agentmesh.checkpoint.store.base import Blob, CheckpointRecord, ListQuery, StoredCheckpoint
from agentmesh.core import new_run_id
from agentmesh.core.errors import CheckpointError, CheckpointSerdeError, ConfigError
from agentmesh.core.log import get_logger

if TYPE_CHECKING:
    from crewai import Crew, Task
    from crewai.crews.crew_output import CrewOutput
    from crewai.tasks.task_output import TaskOutput

__all__ = ["TASKS_NAMESPACE", "CrewCheckpoints", "CrewRun"]

_log = get_logger(__name__)

TASKS_NAMESPACE = "crewai.tasks"
"""Namespace of task checkpoints (thread = the run id)."""

_SOURCE = "crewai.tasks"


def _output_blob(output: TaskOutput, index: int, task_key: str) -> tuple[Blob, dict[str, Any]]:
    """The stored form of an output, and its document (for the in-memory cache)."""
    what = f"output of task {index}"
    document = output_document(output, index=index, task_key=task_key)
    try:
        return dump_blob(document, what), document
    except CheckpointSerdeError:
        # The JSON-mode dump is always serialisable and validates back into the model.
        fallback = output_document(output, index=index, task_key=task_key, json_mode=True)
        return dump_blob(fallback, what), fallback


def _documents(stored: list[StoredCheckpoint]) -> dict[int, dict[str, Any]]:
    """The newest stored document of each task index (``stored`` is newest first)."""
    documents: dict[int, dict[str, Any]] = {}
    for item in stored:
        index = item.record.metadata.get("task_index")
        if not isinstance(index, int) or index in documents:
            continue
        document = as_document(load_blob(item.record.checkpoint, f"output of task {index}"))
        if document is not None and document.get("format") == FORMAT:
            documents[index] = document
    return documents


def _mismatch(document: Mapping[str, Any], task: Task) -> str | None:
    """Why a stored output does not belong to a task (``None``: it does)."""
    if document.get("task_key") != task.key:
        return "the task's description or expected output changed"
    if document.get("description_digest") != description_digest(task.description):
        return "the task's description was interpolated with other inputs"
    return None


class CrewRun:
    """One crew attached to task checkpoints for one run id (a context manager).

    Made by :meth:`CrewCheckpoints.attach`; entering registers the crew's tasks with the hook,
    leaving unregisters them.

    Attributes:
        crew: The attached crew.
        crew_key: The key its checkpoints are stored under.
        restored: Indexes of the tasks whose stored output was used instead of running them.
        saved: Indexes of the tasks whose output was stored.
    """

    def __init__(
        self,
        owner: CrewCheckpoints,
        crew: Crew,
        *,
        run_id: str | None,
        crew_key: str,
    ) -> None:
        """Prepare the attachment (nothing is registered until entered).

        Args:
            owner: The checkpoints object (store, error policy).
            crew: The crew.
            run_id: The run id, or ``None`` to take it when the first task starts.
            crew_key: The crew's key in the checkpoints.
        """
        self.crew = crew
        self.crew_key = crew_key
        self.restored: list[int] = []
        self.saved: list[int] = []
        self._owner = owner
        self._run_id = run_id
        self._lock = threading.RLock()
        self._tasks: dict[str, int] = {}
        self._documents: dict[int, dict[str, Any]] | None = None
        self._ran_from: int | None = None
        self._last_id: str | None = None
        self._entered = False

    @property
    def run_id(self) -> str | None:
        """The run id (``None`` until the first task starts, when none was given)."""
        return self._run_id

    def __enter__(self) -> Self:
        """Register the crew's tasks with the hook (installing it if needed).

        Returns:
            The attachment.

        Raises:
            ConfigError: The crew is attached already, or CrewAI has no hook point.
        """
        tasks = {str(task.id): index for index, task in enumerate(self.crew.tasks)}
        _task_hooks.acquire()
        try:
            _task_hooks.register(list(tasks), self)
        except BaseException:
            _task_hooks.release()
            raise
        with self._lock:
            self._tasks = tasks
            self._entered = True
        if self._run_id is None:
            self._run_id = baggage_run_id()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Unregister the crew's tasks (and drop the hook if nothing else needs it)."""
        self.detach()

    def detach(self) -> None:
        """Unregister the crew's tasks; idempotent."""
        with self._lock:
            if not self._entered:
                return
            self._entered = False
            tasks = list(self._tasks)
        _task_hooks.register(tasks, None)
        _task_hooks.release()

    # -- the hook's side ---------------------------------------------------------------------

    def _resolve_run_id(self) -> str:
        with self._lock:
            if self._run_id is None:
                self._run_id = baggage_run_id() or new_run_id()
                _log.info("crewai_task_checkpoints_run", run_id=self._run_id, crew=self.crew_key)
            return self._run_id

    def _query(self) -> ListQuery:
        return ListQuery(
            thread_id=self._resolve_run_id(),
            namespace=TASKS_NAMESPACE,
            metadata={"crew": self.crew_key},
        )

    def _begin(self, index: int) -> bool:
        """Note a task starting; whether the stored documents must be (re)loaded first."""
        with self._lock:
            if index == 0:  # a new kickoff: restore from the start again
                self._ran_from = None
                self._documents = None
            return self._documents is None

    def _loaded(self, stored: list[StoredCheckpoint]) -> None:
        documents = _documents(stored)
        with self._lock:
            self._documents = documents
            if stored and self._last_id is None:
                self._last_id = stored[0].record.checkpoint_id

    def _pick(self, task: Task, index: int) -> TaskOutput | None:
        with self._lock:
            document = (self._documents or {}).get(index)
            if self._ran_from is not None and index > self._ran_from:
                document = None
            reason = _mismatch(document, task) if document is not None else None
            if reason is not None:
                _log.warning(
                    "crewai_task_checkpoint_mismatch",
                    run_id=self._run_id,
                    task_index=index,
                    reason=reason,
                )
                document = None
            if document is not None:
                try:
                    output = output_from_document(document, task)
                except CheckpointSerdeError as exc:
                    _log.warning(
                        "crewai_task_checkpoint_unusable", task_index=index, error=str(exc)
                    )
                else:
                    self.restored.append(index)
                    task.output = output
                    task.end_time = datetime.datetime.now()
                    _log.info(
                        "crewai_task_restored",
                        run_id=self._run_id,
                        task_index=index,
                        task=task.name or task.description[:60],
                    )
                    return output
            if self._ran_from is None or index < self._ran_from:
                self._ran_from = index
            return None

    def _record(
        self, task: Task, output: TaskOutput, index: int
    ) -> tuple[CheckpointRecord, dict[str, Any]]:
        run_id = self._resolve_run_id()
        blob, document = _output_blob(output, index, task.key)
        with self._lock:
            parent = self._last_id
        record = CheckpointRecord(
            thread_id=run_id,
            namespace=TASKS_NAMESPACE,
            checkpoint_id=new_checkpoint_id(),
            parent_id=parent,
            checkpoint=blob,
            metadata={
                "source": _SOURCE,
                "crew": self.crew_key,
                "task_index": index,
                "task_key": task.key,
                "task_name": task.name,
                "agent": output.agent,
            },
            channel_versions={},
            run_id=run_id,
        )
        return record, document

    def _stored(self, record: CheckpointRecord, index: int, document: dict[str, Any]) -> None:
        with self._lock:
            self._last_id = record.checkpoint_id
            self.saved.append(index)
            if self._documents is not None:
                self._documents[index] = document

    def _index(self, task: Task) -> int:
        return self._tasks[str(task.id)]

    def restore(self, task: Task) -> TaskOutput | None:
        """The stored output of a task, if it may be used instead of running the task.

        Args:
            task: A task of the crew, about to run.

        Returns:
            The stored output, or ``None`` to run the task.

        Raises:
            CheckpointError: The store cannot be read and ``on_error`` is ``"raise"``.
        """
        index = self._index(task)
        if self._begin(index):
            try:
                stored = self._owner.bridge.list(self._query())
            except CheckpointError as exc:  # with on_error="log": run every task
                read_failed(self._owner.on_error, exc, run_id=self._run_id, task_index=index)
                stored = []
            self._loaded(stored)
        return self._pick(task, index)

    async def arestore(self, task: Task) -> TaskOutput | None:
        """:meth:`restore` from async code.

        Args:
            task: A task of the crew, about to run.

        Returns:
            The stored output, or ``None`` to run the task.

        Raises:
            CheckpointError: The store cannot be read and ``on_error`` is ``"raise"``.
        """
        index = self._index(task)
        if self._begin(index):
            try:
                stored = await self._owner.bridge.alist(self._query())
            except CheckpointError as exc:  # with on_error="log": run every task
                read_failed(self._owner.on_error, exc, run_id=self._run_id, task_index=index)
                stored = []
            self._loaded(stored)
        return self._pick(task, index)

    def save(self, task: Task, output: TaskOutput) -> None:
        """Store the output a task produced.

        Args:
            task: The task.
            output: Its output.

        Raises:
            CheckpointError: The write failed and ``on_error`` is ``"raise"``.
        """
        index = self._index(task)
        try:
            record, document = self._record(task, output, index)
            self._owner.bridge.put(record, {})
            self._stored(record, index, document)
        except CheckpointError as exc:
            write_failed(self._owner.on_error, exc, run_id=self._run_id, task_index=index)

    async def asave(self, task: Task, output: TaskOutput) -> None:
        """:meth:`save` from async code.

        Args:
            task: The task.
            output: Its output.

        Raises:
            CheckpointError: The write failed and ``on_error`` is ``"raise"``.
        """
        index = self._index(task)
        try:
            record, document = self._record(task, output, index)
            await self._owner.bridge.aput(record, {})
            self._stored(record, index, document)
        except CheckpointError as exc:
            write_failed(self._owner.on_error, exc, run_id=self._run_id, task_index=index)


def _refuse_streaming(crew: Crew) -> None:
    if crew.stream:
        raise ConfigError(
            "CrewCheckpoints.kickoff cannot run a streaming crew (stream=True): it would return "
            "before the tasks run; use `with checkpoints.attach(crew):` and consume the stream "
            "inside the block"
        )


def _crew_output(result: object) -> CrewOutput:
    from crewai.crews.crew_output import CrewOutput

    if not isinstance(result, CrewOutput):
        raise ConfigError(f"the crew returned a {type(result).__name__}, not a CrewOutput")
    return result


class CrewCheckpoints:
    """Checkpoint each completed task of a crew, and resume a failed run after its last one.

    Args:
        store_or_url: A checkpoint store (not open yet: it is opened on a private event loop
            thread, and closed by :meth:`close`), a synchronous twin store, or a store URL
            (``memory://``, ``duckdb:///path``, ``redis://…``, ``postgresql://…``).
        crew_key: The key a crew's checkpoints are stored under, within a run; by default
            CrewAI's ``Crew.key`` (a digest of the crew's agents and tasks), so a changed crew
            does not pick up another crew's outputs.
        on_error: ``"raise"`` (default): a failed write raises
            :class:`~agentmesh.core.CheckpointError` and the task (and crew) fails;
            ``"log"``: it is logged and the crew goes on (reads always raise).

    Example:
        >>> checkpoints = CrewCheckpoints("memory://")
        >>> checkpoints.on_error
        'raise'
        >>> checkpoints.close()
    """

    def __init__(
        self,
        store_or_url: object,
        *,
        crew_key: str | None = None,
        on_error: OnError = "raise",
    ) -> None:
        """Create the checkpoints object (the store is opened on first use)."""
        if isinstance(store_or_url, str):
            from agentmesh.checkpoint.store.factory import open_store

            store: object = open_store(store_or_url)
        else:
            store = store_or_url
        self.bridge = StoreBridge(store, thread_name="agentmesh-crewai-tasks")
        self.crew_key = crew_key
        self.on_error: OnError = check_on_error(on_error)

    def __enter__(self) -> Self:
        """Use as a context manager; :meth:`close` on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store and the loop thread."""
        self.close()

    def close(self) -> None:
        """Close the store (if opened) and end the event loop thread; idempotent."""
        self.bridge.close()

    @staticmethod
    def install() -> None:
        """Keep CrewAI's task hook installed until :meth:`uninstall` (optional).

        Attachments install it while they are active; installing it for good avoids patching
        and unpatching around each kickoff.

        Raises:
            ConfigError: The installed CrewAI has no ``Task._execute_core``.
        """
        _task_hooks.install()

    @staticmethod
    def uninstall() -> None:
        """Undo :meth:`install` (the hook stays while an attachment is active)."""
        _task_hooks.uninstall()

    def _key(self, crew: Crew) -> str:
        return self.crew_key if self.crew_key is not None else crew.key

    def attach(self, crew: Crew, run_id: str | None = None) -> CrewRun:
        """Attach a crew for a run: use the result as a context manager around the kickoff.

        Inside, each completed task of the crew is checkpointed, and tasks already
        checkpointed for the run are restored instead of run.

        Args:
            crew: The crew.
            run_id: The run id; by default the AgentMesh run id in baggage (when entering, or
                else when the first task starts: the CrewAI instrumentation sets one for each
                kickoff), or a new one. Read it back from :attr:`CrewRun.run_id`.

        Returns:
            The attachment (not entered yet).
        """
        return CrewRun(self, crew, run_id=run_id, crew_key=self._key(crew))

    def resume(self, crew: Crew, run_id: str) -> CrewRun:
        """Attach a crew to resume a run: :meth:`attach` with the run id required.

        Args:
            crew: The crew (built as in the failed run).
            run_id: The failed run's id.

        Returns:
            The attachment (not entered yet).
        """
        return self.attach(crew, run_id)

    def kickoff(
        self, crew: Crew, *, run_id: str | None = None, inputs: dict[str, Any] | None = None
    ) -> CrewOutput:
        """Kick a crew off with task checkpoints (resuming the run when it has some).

        Args:
            crew: The crew.
            run_id: The run id (see :meth:`attach`).
            inputs: The kickoff inputs.

        Returns:
            The crew's output.

        Raises:
            ConfigError: The crew streams (``stream=True``).
        """
        _refuse_streaming(crew)
        with self.attach(crew, run_id):
            result = crew.kickoff(inputs=inputs)  # pyright: ignore[reportUnknownMemberType]
        return _crew_output(result)

    async def akickoff(
        self, crew: Crew, *, run_id: str | None = None, inputs: dict[str, Any] | None = None
    ) -> CrewOutput:
        """Kick a crew off natively async (``Crew.akickoff``) with task checkpoints.

        Args:
            crew: The crew.
            run_id: The run id (see :meth:`attach`).
            inputs: The kickoff inputs.

        Returns:
            The crew's output.

        Raises:
            ConfigError: The crew streams (``stream=True``).
        """
        _refuse_streaming(crew)
        with self.attach(crew, run_id):
            result = await crew.akickoff(inputs=inputs)  # pyright: ignore[reportUnknownMemberType]
        return _crew_output(result)

    def completed(self, crew: Crew, run_id: str) -> dict[int, TaskOutput]:
        """The stored outputs of a crew's tasks for a run, by task index.

        Args:
            crew: The crew.
            run_id: The run id.

        Returns:
            The outputs whose task still matches (position and ``Task.key``).

        Raises:
            CheckpointError: The store cannot be read and ``on_error`` is ``"raise"``.
        """
        stored = self.bridge.list(
            ListQuery(
                thread_id=run_id, namespace=TASKS_NAMESPACE, metadata={"crew": self._key(crew)}
            )
        )
        outputs: dict[int, TaskOutput] = {}
        for index, document in sorted(_documents(stored).items()):
            if index < len(crew.tasks) and document.get("task_key") == crew.tasks[index].key:
                outputs[index] = output_from_document(document, crew.tasks[index])
        return outputs
