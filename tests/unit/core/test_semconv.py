import importlib.util
import re
from pathlib import Path

from agentmesh.core import semconv

ROOT = Path(__file__).resolve().parents[3]


def _gendocs():
    spec = importlib.util.spec_from_file_location("gendocs", ROOT / "scripts" / "gendocs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doc_is_generated_from_the_registry() -> None:
    assert (ROOT / "docs" / "semconv.md").read_text() == _gendocs().semconv_markdown()


def test_doc_table_lists_exactly_the_registered_names_with_their_types() -> None:
    text = (ROOT / "docs" / "semconv.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| ([a-z\[\]]+) \|", text, flags=re.MULTILINE)
    assert dict(rows) == {name: spec.type for name, spec in semconv.ATTRIBUTES.items()}


def test_configuration_doc_is_current() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == _gendocs().configuration_markdown()


def test_constants_and_registry_agree() -> None:
    constants = {
        value
        for name, value in vars(semconv).items()
        if name.isupper() and isinstance(value, str) and not name.startswith(("EVENT_", "METRIC_"))
    }
    assert constants == set(semconv.ATTRIBUTES)


def test_genai_names_are_reused_not_reinvented() -> None:
    for name, spec in semconv.ATTRIBUTES.items():
        if spec.origin == "agentmesh":
            assert name.startswith("agentmesh."), name
        else:
            assert not name.startswith("agentmesh."), name
    assert semconv.GEN_AI_OPERATION_NAME == "gen_ai.operation.name"
    assert semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME == "gen_ai.agent.handoff.source.name"


def test_run_id_travels_as_baggage() -> None:
    assert semconv.AGENTMESH_RUN_ID in semconv.BAGGAGE_KEYS
    assert semconv.GEN_AI_REQUEST_MODEL not in semconv.BAGGAGE_KEYS
