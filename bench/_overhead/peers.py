"""The contenders: what each venv installs and which distribution's version to report.

Every venv gets the same ``openai`` and ``httpx`` (:data:`COMMON`) so the bare call is the same
everywhere; each peer is pinned to the release measured, so a cached venv stays comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

OPENAI_VERSION = "2.54.0"
COMMON = (f"openai=={OPENAI_VERSION}", "httpx==0.28.1", "opentelemetry-sdk>=1.30")
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Peer:
    """One contender.

    Attributes:
        name: Key in the JSON line.
        label: Name in the table.
        dist: Distribution whose version is reported.
        requirements: What ``uv pip install`` gets besides ``common``.
        key_files: Files whose content joins the venv's cache key (our own packages).
        common: What every contender's venv gets (:data:`COMMON`; other values for venvs
            that are not contenders, such as another ``openai`` major).
    """

    name: str
    label: str
    dist: str
    requirements: tuple[str, ...]
    key_files: tuple[Path, ...] = ()
    common: tuple[str, ...] = COMMON


AGENTMESH = Peer(
    name="agentmesh",
    label="AgentMesh",
    dist="agentmesh-instrumentation",
    requirements=tuple(
        item for pkg in ("core", "router", "instrumentation") for item in ("-e", str(ROOT / pkg))
    ),
    key_files=tuple(ROOT / pkg / "pyproject.toml" for pkg in ("core", "router", "instrumentation")),
)

PEERS: tuple[Peer, ...] = (
    AGENTMESH,
    Peer(
        name="openllmetry",
        label="OpenLLMetry",
        dist="opentelemetry-instrumentation-openai",
        requirements=("opentelemetry-instrumentation-openai==0.62.4",),
    ),
    Peer(
        name="openinference",
        label="OpenInference",
        dist="openinference-instrumentation-openai",
        requirements=("openinference-instrumentation-openai==0.1.66",),
    ),
    Peer(
        name="openlit",
        label="OpenLIT",
        dist="openlit",
        requirements=("openlit==1.45.0",),
    ),
    Peer(
        name="otel_genai",
        label="OTel GenAI (official)",
        dist="opentelemetry-instrumentation-genai-openai",
        requirements=("opentelemetry-instrumentation-genai-openai==1.3b0",),
    ),
)

BY_NAME = {peer.name: peer for peer in PEERS}


def with_agentmesh(peer: Peer) -> Peer:
    """Return a contender whose venv holds both the peer and AgentMesh (duplicate-span probe).

    Args:
        peer: A peer.

    Returns:
        The combined contender, named ``<peer>+agentmesh``.
    """
    return Peer(
        name=f"{peer.name}+agentmesh",
        label=f"{peer.label} + AgentMesh",
        dist=peer.dist,
        requirements=(*peer.requirements, *AGENTMESH.requirements),
        key_files=AGENTMESH.key_files,
    )
