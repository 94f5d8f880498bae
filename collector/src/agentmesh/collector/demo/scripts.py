"""How the demo scripts the fake provider: a well-behaved supervisor, then a looping one."""

from __future__ import annotations

from agentmesh.collector.demo.supervisor_app import SUPERVISOR_MODEL, WORKER_MODEL
from agentmesh.instrumentation.testing import ModelScript, ResponseRule

__all__ = ["clean_scripts", "looping_supervisor"]

_WORKER_REPLY = (
    "Sunlight scatters off air molecules; shorter (blue) wavelengths scatter most "
    "(Rayleigh scattering), so the sky looks blue."
)


def clean_scripts() -> dict[str, ModelScript]:
    """Scripts under which the supervisor calls the researcher, then the writer, then finishes.

    Returns:
        Scripts by model name.
    """
    supervisor = ModelScript(
        rules=(
            ResponseRule(pattern=r"Done so far: researcher, writer", content="FINISH"),
            ResponseRule(pattern=r"Done so far: researcher", content="writer"),
        ),
        content="researcher",
        latency=0.005,
    )
    worker = ModelScript(content=_WORKER_REPLY, latency=0.01)
    return {SUPERVISOR_MODEL: supervisor, WORKER_MODEL: worker}


def looping_supervisor() -> ModelScript:
    """The injected fault: a supervisor model that sends the work to the researcher forever.

    Returns:
        The supervisor model's script.
    """
    return ModelScript(content="researcher", latency=0.005)
