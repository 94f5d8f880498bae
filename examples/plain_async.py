"""Plain asyncio, no framework: parallel agents calling the OpenAI and Anthropic SDKs.

A lead agent plans with OpenAI, then three agents run at once (``asyncio.gather``): two
researchers on OpenAI and a critic on Anthropic (on OpenAI when the ``anthropic`` SDK is not
installed). The run and its agent steps are declared with ``workflow`` and ``agent`` (spans
the collector rebuilds the run's graph from); the run id and the task class ride in W3C
baggage (``workflow``, ``task_class``), so every LLM call's span carries them and every
outgoing request sends them.

Offline by default: it starts the bundled fake provider in-process. With ``--base-url`` it
talks to another server speaking both APIs (``agentmesh-fake-provider``). Run it instrumented::

    uv run agentmesh-instrument python examples/plain_async.py
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
from contextlib import ExitStack

import openai

from agentmesh.instrumentation import agent, current_run_id, task_class, workflow
from agentmesh.instrumentation.testing import FakeProviderThread, ModelScript

OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-3-5-haiku-latest"
WORKFLOW = "plain_async"


def scripts() -> dict[str, ModelScript]:
    """What the fake provider answers for each model."""
    return {
        OPENAI_MODEL: ModelScript(content="Findings: the cache cuts latency by half."),
        ANTHROPIC_MODEL: ModelScript(content="Critique: the benchmark lacks a cold start."),
    }


def has_anthropic() -> bool:
    """Whether the ``anthropic`` SDK is installed."""
    return importlib.util.find_spec("anthropic") is not None


async def ask_openai(client: openai.AsyncOpenAI, agent_name: str, prompt: str) -> str:
    """One agent step on OpenAI."""
    with agent(agent_name):
        reply = await client.chat.completions.create(
            model=OPENAI_MODEL, messages=[{"role": "user", "content": prompt}]
        )
    return reply.choices[0].message.content or ""


async def ask_anthropic(base_url: str, agent_name: str, prompt: str) -> str:
    """One agent step on Anthropic."""
    import anthropic

    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="offline-key", max_retries=0)
    with agent(agent_name):
        reply = await client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=200, messages=[{"role": "user", "content": prompt}]
        )
    return "".join(block.text for block in reply.content if block.type == "text")


async def run(openai_url: str, anthropic_url: str) -> None:
    """Run the workflow: plan, then three agents in parallel."""
    client = openai.AsyncOpenAI(base_url=openai_url, api_key="offline-key", max_retries=0)
    with task_class("research"), workflow(WORKFLOW) as run_id:
        print(f"run {run_id}")
        plan = await ask_openai(client, "lead", "Plan a study of the new cache.")
        print(f"lead: {plan}")
        critic = (
            ask_anthropic(anthropic_url, "critic", f"Criticise: {plan}")
            if has_anthropic()
            else ask_openai(client, "critic", f"Criticise: {plan}")
        )
        answers = await asyncio.gather(
            ask_openai(client, "researcher_1", f"Measure latency: {plan}"),
            ask_openai(client, "researcher_2", f"Measure memory: {plan}"),
            critic,
        )
        for name, answer in zip(("researcher_1", "researcher_2", "critic"), answers, strict=True):
            print(f"{name}: {answer}")
        assert current_run_id() == run_id  # the gathered tasks left the context as it was


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default=None, help="default: an in-process fake provider")
    args = parser.parse_args()
    with ExitStack() as stack:
        root: str | None = args.base_url
        if root is None:
            root = stack.enter_context(FakeProviderThread(scripts())).url
        root = root.rstrip("/").removesuffix("/v1")
        asyncio.run(run(f"{root}/v1", root))


if __name__ == "__main__":
    main()
