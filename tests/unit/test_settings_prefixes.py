"""The settings classes of the packages, side by side (a test across packages)."""

from __future__ import annotations

from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.log import LoggingSettings
from agentmesh.instrumentation.settings import InstrumentationSettings
from agentmesh.router.catalog import RouterSettings


def test_no_instrumentation_setting_has_a_component_settings_name() -> None:
    # what makes agentmesh.core.settings_check safe in reporting AGENTMESH_GRPC_PORT as the
    # collector's setting without its part: AGENTMESH_<name> is never the instrumentation's own
    ours = set(InstrumentationSettings.model_fields)
    for component in (CollectorSettings, LoggingSettings, RouterSettings):
        assert ours.isdisjoint(component.model_fields), component.__name__
