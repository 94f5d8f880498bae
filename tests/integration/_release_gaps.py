"""Instrumentation tests of APIs that the oldest supported SDK releases do not have yet.

Shared by ``test_dependency_floors.py`` (all floors at once) and ``test_sdk_releases.py`` (one
release at a time). Node ids are relative to ``tests/unit/instrumentation``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

OPENAI_1_40: Final = (
    # the usage detail models arrived later
    "test_openai_hot_path.py::test_usage_fields_are_read_from_the_sdk_models_and_from_plain_objects",
)
"""What openai 1.40 cannot run (whole files about later APIs are left out by each test)."""

ANTHROPIC_0_40: Final = (
    "test_anthropic_messages.py::test_async_raw_response",  # parse() was sync
    "test_anthropic_messages.py::test_parse_structured_output",  # no structured output
    "test_anthropic_streams.py::test_beta_stream_helper",  # no beta stream helper
    "test_anthropic_streams.py::test_async_beta_stream_helper",
)
"""What anthropic 0.40 cannot run."""

LANGGRAPH_0_5: Final = (
    # names 1.x's private module of the branch it patches (0.5: langgraph.graph.branch)
    "test_langgraph_nodes.py::test_uninstrument_removes_every_patch",
)
"""What langgraph 0.5 cannot run."""


def deselected(node_ids: Iterable[str], under: str = "") -> tuple[str, ...]:
    """``--deselect`` options for ``node_ids``, each prefixed with ``under`` (a directory).

    Args:
        node_ids: Node ids relative to ``tests/unit/instrumentation``.
        under: The prefix pytest needs where it runs (empty: as given).

    Returns:
        The options, flat.
    """
    prefix = f"{under}/" if under else ""
    return tuple(item for node in node_ids for item in ("--deselect", f"{prefix}{node}"))
