# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false
"""The demo's multi-agent app: a LangGraph supervisor handing work to two workers.

An ordinary, uninstrumented LangGraph program: the supervisor asks a model which worker goes
next (``researcher``, ``writer`` or ``FINISH``) and hands off with ``Command(goto=…)``; each
worker calls the model and hands back over a plain edge. Every call goes through the real
``openai`` SDK to whatever ``--base-url`` names (the demo points it at the bundled fake
provider). Run it instrumented with::

    agentmesh-instrument python -m agentmesh.collector.demo.supervisor_app --base-url URL

This module is application code, not library code: it is the one place in the collector that
imports a framework, and only the demo runs it.
"""

from __future__ import annotations

import argparse
import operator
import sys
from typing import Annotated, Literal, TypedDict

import openai
from langgraph.errors import GraphRecursionError
from langgraph.graph import START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

__all__ = ["SUPERVISOR_MODEL", "WORKER_MODEL", "DemoState", "build_graph", "main"]

SUPERVISOR_MODEL = "gpt-4o-mini"
"""Model the supervisor asks for its routing decision."""

WORKER_MODEL = "gpt-4.1-mini"
"""Model the workers call."""

SUPERVISOR_PROMPT = (
    "You supervise a researcher and a writer. Reply with exactly one word: the worker who "
    "should act next (researcher or writer), or FINISH when the task is done."
)


class DemoState(TypedDict):
    """State that crosses every handoff of the demo graph.

    Attributes:
        task: What the user asked for.
        notes: What the workers produced, in order.
        done: Workers that have acted, in order.
    """

    task: str
    notes: Annotated[list[str], operator.add]
    done: Annotated[list[str], operator.add]


def build_graph(client: openai.OpenAI) -> CompiledStateGraph[DemoState, None, DemoState, DemoState]:
    """Build the supervisor graph.

    Args:
        client: The OpenAI client every agent calls.

    Returns:
        The compiled graph, named ``supervisor_graph``.
    """

    def ask(model: str, system: str, user: str) -> str:
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            temperature=0.0,
        )
        return (reply.choices[0].message.content or "").strip()

    def supervisor(state: DemoState) -> Command[Literal["researcher", "writer", "__end__"]]:
        done = ", ".join(state["done"]) or "nothing"
        answer = ask(
            SUPERVISOR_MODEL, SUPERVISOR_PROMPT, f"Task: {state['task']}\nDone so far: {done}"
        )
        choice = answer.split()[0].strip(".").lower() if answer else "finish"
        if choice == "researcher":
            return Command(goto="researcher")
        if choice == "writer":
            return Command(goto="writer")
        return Command(goto="__end__")

    def researcher(state: DemoState) -> dict[str, list[str]]:
        note = ask(WORKER_MODEL, "You are a researcher. List the key facts.", state["task"])
        return {"notes": [note], "done": ["researcher"]}

    def writer(state: DemoState) -> dict[str, list[str]]:
        facts = "\n".join(state["notes"])
        text = ask(
            WORKER_MODEL, "You are a writer. Write a short answer.", f"{state['task']}\n{facts}"
        )
        return {"notes": [text], "done": ["writer"]}

    graph = StateGraph(DemoState)
    graph.add_node("supervisor", supervisor)
    graph.add_node("researcher", researcher)
    graph.add_node("writer", writer)
    graph.add_edge(START, "supervisor")
    graph.add_edge("researcher", "supervisor")
    graph.add_edge("writer", "supervisor")
    return graph.compile(name="supervisor_graph")


def main(argv: list[str] | None = None) -> int:
    """Run the graph once on a task and print what happened.

    Args:
        argv: Command-line arguments (``--base-url``, ``--task``, ``--max-steps``).

    Returns:
        0 when the run finished, 3 when it hit the step limit.
    """
    parser = argparse.ArgumentParser(description="AgentMesh demo: a LangGraph supervisor app.")
    parser.add_argument("--base-url", required=True, help="OpenAI-compatible base URL")
    parser.add_argument("--task", default="Explain why the sky is blue.")
    parser.add_argument("--max-steps", type=int, default=20, help="LangGraph recursion limit")
    args = parser.parse_args(argv)

    client = openai.OpenAI(base_url=args.base_url, api_key="demo-key", max_retries=0)
    graph = build_graph(client)
    try:
        result = graph.invoke(
            {"task": args.task, "notes": [], "done": []},
            config={"recursion_limit": args.max_steps, "configurable": {"thread_id": "demo"}},
        )
    except GraphRecursionError:
        print(f"run stopped by LangGraph after {args.max_steps} steps (recursion limit)")  # noqa: T201
        return 3
    print("workers, in order: " + " → ".join(result["done"]))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
