"""What the router's operators read and set: trade-off weights, the decisions table."""

from __future__ import annotations

import pytest
from rich.console import Console

from agentmesh.collector.cli.render import render_decisions
from agentmesh.collector.routing.configured import tradeoffs_from_settings
from agentmesh.collector.settings import CollectorSettings
from agentmesh.core.errors import ConfigError


@pytest.mark.parametrize("weight", [float("nan"), float("inf")])
def test_tradeoff_weights_that_cannot_be_published_are_refused_when_loaded(weight: float) -> None:
    with pytest.raises(ConfigError, match=r"router_tradeoffs.*finite number"):
        CollectorSettings.load(router_tradeoffs={"*": {"cost_weight": weight}})


def test_a_negative_tradeoff_weight_is_refused() -> None:
    settings = CollectorSettings(router_tradeoffs={"*": {"cost_weight": -1.0}})
    with pytest.raises(ConfigError, match="non-negative, finite"):
        tradeoffs_from_settings(settings)


def test_the_decisions_table_says_which_model_answered_a_fallback() -> None:
    rows: list[dict[str, object]] = [
        {
            "start_time": 1.0,
            "chosen": "gpt-4o",
            "model": "gpt-4o-mini",
            "sent_model": "gpt-4o-mini",
        },
        {"start_time": 2.0, "chosen": "gpt-4o", "model": "gpt-4o-mini"},  # an older export
        {"start_time": 3.0, "chosen": "gpt-4o", "model": "gpt-4o-2024-08-06"},  # a dated name
        {"start_time": 4.0, "chosen": "gpt-4o", "model": "gpt-4o", "sent_model": "gpt-4o"},
    ]
    console = Console(record=True, width=300)
    render_decisions(console, [{**row, "quality": 1.0} for row in rows])
    text = console.export_text()
    assert text.count("(answered by gpt-4o-mini)") == 2
    assert "answered by gpt-4o-2024" not in text
    assert "(answered by gpt-4o)" not in text
