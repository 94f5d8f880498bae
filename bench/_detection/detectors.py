"""The detector set under test: :func:`build_detectors`, and what was found of it.

The set is the collector's own: ``agentmesh.collector.detectors.registry`` builds the rules and
detectors from :class:`~agentmesh.collector.settings.CollectorSettings` (defaults, or the
``AGENTMESH_COLLECTOR_*`` environment), as the service does. Without a registry (or when it
fails), each detector module of ``agentmesh.collector.detectors`` is imported if it exists and
every public class it defines that is a :class:`~agentmesh.collector.detectors.base.Rule` (has
``evaluate``) or a :class:`~agentmesh.collector.detectors.base.Detector` (has ``observe`` and
``tick``) is built with its defaults. A module that is missing or fails to import, or a class
that cannot be built without arguments, is listed by :func:`inventory` (the report shows it)
instead of stopping the benchmark.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Final

from agentmesh.collector.detection import Detection
from agentmesh.collector.detectors.base import CycleView, Detector, Rule
from agentmesh.collector.graph.run_graph import RunGraph

__all__ = [
    "MODULES",
    "ModuleStatus",
    "NullDetector",
    "NullRule",
    "build_detectors",
    "inventory",
    "stand_ins",
]

MODULES: Final = (
    "handoff_loop",
    "tool_loop",
    "error_cascade",
    "context_loss",
    "runaway",
    "stuck",
    "spikes",
    "rate_limit",
    "outage",
)
"""Detector modules of ``agentmesh.collector.detectors``, by the issue's plan."""

_PACKAGE: Final = "agentmesh.collector.detectors"


@dataclass(slots=True)
class ModuleStatus:
    """What was found in one detector module.

    Attributes:
        module: Module name (under ``agentmesh.collector.detectors``).
        state: ``ok``, ``missing`` or ``error``.
        rules: Names of the rule classes built.
        detectors: Names of the streaming detector classes built.
        problems: Why something was not built.
    """

    module: str
    state: str = "ok"
    rules: list[str] = field(default_factory=lambda: list[str]())
    detectors: list[str] = field(default_factory=lambda: list[str]())
    problems: list[str] = field(default_factory=lambda: list[str]())


def _classes(module: Any) -> list[type]:
    found: list[type] = []
    namespace: dict[str, object] = module.__dict__
    members = dict(namespace)
    for name, value in members.items():
        if name.startswith("_") or not inspect.isclass(value):
            continue
        cls: type = value
        if cls.__module__ != module.__name__ or getattr(cls, "_is_protocol", False):
            continue
        if inspect.isabstract(cls):
            continue
        found.append(cls)
    return found


def _scan() -> tuple[list[Rule], list[Detector], list[ModuleStatus]]:
    rules: list[Rule] = []
    detectors: list[Detector] = []
    statuses: list[ModuleStatus] = []
    for short in MODULES:
        status = ModuleStatus(short)
        statuses.append(status)
        try:
            module = importlib.import_module(f"{_PACKAGE}.{short}")
        except ModuleNotFoundError as exc:
            status.state = "missing" if exc.name == f"{_PACKAGE}.{short}" else "error"
            status.problems.append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - a module being written may not import yet
            status.state = "error"
            status.problems.append(f"{type(exc).__name__}: {exc}")
            continue
        for cls in _classes(module):
            is_rule = callable(getattr(cls, "evaluate", None))
            is_detector = callable(getattr(cls, "observe", None)) and callable(
                getattr(cls, "tick", None)
            )
            if not (is_rule or is_detector):
                continue
            try:
                instance = cls()
            except Exception as exc:  # noqa: BLE001 - listed in the report instead
                status.problems.append(f"{cls.__name__}(): {type(exc).__name__}: {exc}")
                continue
            if is_detector:
                detectors.append(instance)
                status.detectors.append(cls.__name__)
            else:
                rules.append(instance)
                status.rules.append(cls.__name__)
        if not status.rules and not status.detectors:
            status.state = "error" if status.problems else "empty"
    return rules, detectors, statuses


def _from_registry() -> tuple[list[Rule], list[Detector], str] | None:
    """The service's set, or ``None`` when the registry is missing or fails."""
    try:
        registry: Any = importlib.import_module(f"{_PACKAGE}.registry")
        settings_module: Any = importlib.import_module("agentmesh.collector.settings")
        settings = settings_module.CollectorSettings()
        rules: list[Rule] = list(registry.build_rules(settings))
        detectors: list[Detector] = list(registry.build_detectors(settings))
    except Exception:  # noqa: BLE001 - fall back to the modules one by one
        return None
    return rules, detectors, "registry.build_rules/build_detectors(CollectorSettings())"


def _built() -> tuple[list[Rule], list[Detector], str, list[ModuleStatus]]:
    scanned_rules, scanned_detectors, statuses = _scan()
    found = _from_registry()
    if found is None:
        return scanned_rules, scanned_detectors, "each module's classes, defaults", statuses
    rules, detectors, source = found
    for status in statuses:  # report what the registry built, module by module
        prefix = f"{_PACKAGE}.{status.module}"
        status.rules = [type(r).__name__ for r in rules if type(r).__module__ == prefix]
        status.detectors = [type(d).__name__ for d in detectors if type(d).__module__ == prefix]
        if status.state == "ok" and not status.rules and not status.detectors:
            status.state = "unused"
    return rules, detectors, source, statuses


def build_detectors() -> tuple[list[Rule], list[Detector]]:
    """Build the rules and streaming detectors under test, fresh instances.

    Returns:
        ``(rules, detectors)``: the collector registry's set with its settings when there is a
        registry, else every rule and detector class found, with its defaults.
    """
    rules, detectors, _, _ = _built()
    return rules, detectors


def inventory() -> tuple[str, list[ModuleStatus]]:
    """Say where the set comes from and which detector modules exist and are used.

    Returns:
        How the set was built, and one status per module of :data:`MODULES`.
    """
    _, _, source, statuses = _built()
    return source, statuses


class NullRule:
    """A rule that finds nothing, named like the one it stands in for (the CPU baseline).

    Args:
        name: The name of the rule it replaces.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def evaluate(self, graph: RunGraph) -> list[Detection]:
        """Find nothing.

        Args:
            graph: Ignored.

        Returns:
            An empty list.
        """
        del graph
        return []


class NullDetector:
    """A detector that finds nothing, named like the one it stands in for (the CPU baseline).

    Args:
        name: The name of the detector it replaces.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def observe(self, cycle: CycleView) -> list[Detection]:
        """Find nothing.

        Args:
            cycle: Ignored.

        Returns:
            An empty list.
        """
        del cycle
        return []

    def tick(self, now_ns: int) -> list[Detection]:
        """Find nothing.

        Args:
            now_ns: Ignored.

        Returns:
            An empty list.
        """
        del now_ns
        return []


def stand_ins(rules: list[Rule], detectors: list[Detector]) -> tuple[list[Rule], list[Detector]]:
    """Stand-ins that find nothing, one per rule and detector (same names, same count).

    Replayed with these, the pipeline, the replay's timing wrappers and the clock do all their
    work but no rule or detector does any: the difference in process CPU time against the real
    set is what the rules and detectors cost, all in.

    Args:
        rules: The rules under test.
        detectors: The detectors under test.

    Returns:
        ``(rules, detectors)`` stand-ins.
    """
    null_rules: list[Rule] = [NullRule(r.name) for r in rules]
    null_detectors: list[Detector] = [NullDetector(d.name) for d in detectors]
    return null_rules, null_detectors
