"""Plain code, no framework: a planner and a solver calling the openai SDK.

``workflow`` makes the calls one run and ``agent`` names the step each belongs to, so the
collector shows one run with two agents (and the handoff between them) rather than one run per
LLM call; both do nothing without the instrumentation.

Works unchanged against OpenAI (set OPENAI_API_KEY and drop --base-url) or offline against the
bundled fake provider (``agentmesh-fake-provider``). Run it instrumented with
``agentmesh-instrument python examples/plain_openai.py --base-url http://127.0.0.1:8765/v1``.
"""

from __future__ import annotations

import argparse
import asyncio

import openai

from agentmesh.instrumentation import agent, workflow


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args()
    client = openai.AsyncOpenAI(base_url=args.base_url, api_key="offline-key")

    with workflow("compare-databases"):
        with agent("planner"):
            plan = await client.chat.completions.create(
                model=args.model,
                messages=[
                    {"role": "user", "content": "Plan three steps to compare two databases."}
                ],
            )
        steps = (plan.choices[0].message.content or "").strip()
        with agent("solver"):
            answers = await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model=args.model,
                        messages=[{"role": "user", "content": f"Do step {i}: {steps}"}],
                    )
                    for i in range(1, 4)
                )
            )
    for i, answer in enumerate(answers, 1):
        print(f"step {i}: {answer.choices[0].message.content}")


if __name__ == "__main__":
    asyncio.run(main())
