"""A CrewAI ``TaskOutput`` as a checkpoint document, and back.

Kept: the raw text, the pydantic output (its fields, validated back into the task's current
``output_pydantic`` model, so fields added since take their defaults) or JSON dict, the agent's
role, the task's name, description and expected output, the output format, the tool failures,
CrewAI's task key (a digest of the task's original description and expected output) and a
digest of the description as run. The LLM messages are not kept.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from agentmesh.core.errors import CheckpointSerdeError

if TYPE_CHECKING:
    from crewai import Task
    from crewai.tasks.task_output import TaskOutput

__all__ = ["FORMAT", "description_digest", "output_document", "output_from_document"]

FORMAT = 1
"""Version of the document layout."""


def description_digest(description: str) -> str:
    """Digest of a task description as run (inputs interpolated).

    Args:
        description: The description.

    Returns:
        The first 32 hex digits of its SHA-256.
    """
    return hashlib.sha256(description.encode()).hexdigest()[:32]


def _model_fields(model: BaseModel, *, json_mode: bool) -> dict[str, Any]:
    return model.model_dump(mode="json" if json_mode else "python")


def output_document(
    output: TaskOutput, *, index: int, task_key: str, json_mode: bool = False
) -> dict[str, Any]:
    """Describe a task output as a document for the serializer.

    Args:
        output: The output.
        index: The task's position in the crew.
        task_key: CrewAI's ``Task.key``.
        json_mode: Dump the pydantic output and tool failures in JSON mode (the fallback when
            the serializer refuses a value of the Python-mode dump).

    Returns:
        The document.
    """
    pydantic_output = output.pydantic
    return {
        "format": FORMAT,
        "index": index,
        "task_key": task_key,
        "description_digest": description_digest(output.description),
        "name": output.name,
        "description": output.description,
        "expected_output": output.expected_output,
        "raw": output.raw,
        "pydantic": (
            _model_fields(pydantic_output, json_mode=json_mode)
            if pydantic_output is not None
            else None
        ),
        "pydantic_type": (
            f"{type(pydantic_output).__module__}.{type(pydantic_output).__qualname__}"
            if pydantic_output is not None
            else None
        ),
        "json_dict": output.json_dict,
        "agent": output.agent,
        "output_format": output.output_format.value,
        "tool_failures": [
            _model_fields(failure, json_mode=json_mode) for failure in output.tool_failures
        ],
    }


def _text(document: Mapping[str, Any], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) else None


def output_from_document(document: Mapping[str, Any], task: Task) -> TaskOutput:
    """Rebuild a task output for a task from its stored document.

    Args:
        document: The document :func:`output_document` made.
        task: The task being restored (its ``output_pydantic`` model validates the stored
            pydantic output).

    Returns:
        The output.

    Raises:
        CheckpointSerdeError: The document cannot be turned back into a ``TaskOutput``.
    """
    from crewai.tasks.output_format import OutputFormat
    from crewai.tasks.task_output import TaskOutput
    from pydantic import ValidationError

    pydantic_output: BaseModel | None = None
    stored_model = document.get("pydantic")
    try:
        if isinstance(stored_model, Mapping) and task.output_pydantic is not None:
            pydantic_output = task.output_pydantic.model_validate(dict(stored_model))  # pyright: ignore[reportUnknownArgumentType]
        json_dict = document.get("json_dict")
        return TaskOutput.model_validate(
            {
                "name": _text(document, "name"),
                "description": _text(document, "description") or task.description,
                "expected_output": _text(document, "expected_output"),
                "raw": _text(document, "raw") or "",
                "pydantic": pydantic_output,
                "json_dict": dict(json_dict) if isinstance(json_dict, Mapping) else None,  # pyright: ignore[reportUnknownArgumentType]
                "agent": _text(document, "agent") or "",
                "output_format": OutputFormat(_text(document, "output_format") or "raw"),
                "tool_failures": document.get("tool_failures") or [],
            }
        )
    except (ValidationError, ValueError, TypeError) as exc:
        raise CheckpointSerdeError(
            f"the stored output of task {document.get('index')!r} does not fit the task: {exc}"
        ) from exc
