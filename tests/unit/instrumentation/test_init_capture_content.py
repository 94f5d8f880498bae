"""``init(capture_content=...)`` reaches the instrumentors (it was read from the environment only).

A real interpreter calls ``init()`` (the global provider) and the real OpenAI SDK against the
fake provider; the app prints what its span recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

_APP = """
import json, sys
import openai
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import agentmesh.instrumentation as am

provider = am.init(**json.loads(sys.argv[2]))
exporter = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(exporter))
client = openai.OpenAI(base_url=sys.argv[1], api_key="t", max_retries=0)
client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "a secret prompt"}]
)
(span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("chat")]
print(json.dumps("a secret prompt" in json.dumps(dict(span.attributes or {}))))
"""


@pytest.mark.parametrize(
    ("env", "overrides", "captured"),
    [
        ({}, {"capture_content": True}, True),
        ({"AGENTMESH_CAPTURE_CONTENT": "true"}, {"capture_content": False}, False),
        ({"AGENTMESH_CAPTURE_CONTENT": "true"}, {}, True),  # no argument: the environment
        ({}, {}, False),
    ],
)
def test_init_capture_content_wins_over_the_environment(
    tmp_path: Path, env: dict[str, str], overrides: dict[str, object], captured: bool
) -> None:
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(_APP))
    base = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("AGENTMESH_CAPTURE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    }
    with FakeProviderThread({"gpt-4o-mini": ModelScript(content="Bonjour.")}) as fake:
        done = subprocess.run(
            [sys.executable, str(app), fake.openai_base_url, json.dumps(overrides)],
            cwd=tmp_path,
            env={**base, "AGENTMESH_ENDPOINT": "http://127.0.0.1:9", **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) is captured
