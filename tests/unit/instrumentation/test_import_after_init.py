"""Instrumenting before the SDKs are imported, as zero-code start does, observes their calls.

``agentmesh-instrument`` and ``init()`` arm the patches before the app imports ``openai`` or
``anthropic``; each patch applies when its module is imported. On openai before 1.7x and
anthropic before 0.5x that import happens inside the package's own ``__init__``, before it binds
``Stream``, and the patches used to fail there ("partially initialized module"), leaving both
SDKs unobserved. ``test_sdk_releases`` reruns this file on openai 1.40 and anthropic 0.40.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PROGRAM = """
import json
import sys

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentmesh.instrumentation as am
from agentmesh.instrumentation.testing.fake_provider import FakeProviderThread

provider = am.init(service_name="early")
spans = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(spans))
assert "openai" not in sys.modules and "anthropic" not in sys.modules

import anthropic
import openai

with FakeProviderThread() as fake:
    chat = openai.OpenAI(base_url=fake.openai_base_url, api_key="t", max_retries=0).chat
    chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    claude = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="t", max_retries=0)
    claude.messages.create(
        model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    )
print(json.dumps(sorted(
    (span.name, (span.attributes or {}).get("gen_ai.usage.input_tokens", 0) > 0)
    for span in spans.get_finished_spans()
)))
"""


def test_sdks_imported_after_init_are_instrumented() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTMESH_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROGRAM)],
        # nothing listens there: the spans are read from the in-memory exporter
        env={**clean, "AGENTMESH_ENDPOINT": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "instrumentation_error" not in result.stderr, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        '[["chat claude-haiku-4-5", true], ["chat gpt-4o-mini", true]]'
    )
