"""A LangGraph supervisor that fans research out with ``Send`` and hands analysis to a
tool-calling worker (``ToolNode``), every agent calling the real openai SDK.

    supervisor ──Send(3)──▶ researcher ──edge──▶ supervisor ──Command(goto)──▶ analyst
                                                          analyst ◀──▶ tools (ToolNode) ──▶ END

Offline by default: it starts the bundled fake provider in-process with the scripts below (the
analyst's model answers first with two tool calls, then with text). With ``--base-url`` it talks
to another OpenAI-compatible server instead (one serving :func:`scripts`, or OpenAI itself).
Run it instrumented to see the spans (workflow, agents with handoffs, LLM calls, tool calls)::

    uv run agentmesh-instrument python examples/langgraph_tools.py
"""

from __future__ import annotations

import argparse
import json
import operator
import threading
from contextlib import ExitStack
from typing import Annotated, Literal, TypedDict

import openai
from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, Send

from agentmesh.instrumentation.testing import (
    FakeProviderThread,
    ModelScript,
    ResponseRule,
    ScriptedReply,
    ToolCallScript,
)

SUPERVISOR_MODEL = "gpt-4o-mini"
ANALYST_MODEL = "gpt-4o"
TOPICS = ("climate", "transport", "housing")


def scripts() -> dict[str, ModelScript]:
    """What the fake provider answers for each model."""
    return {
        SUPERVISOR_MODEL: ModelScript(
            rules=(
                ResponseRule(pattern="^Research climate", content="Warmer summers ahead."),
                ResponseRule(pattern="^Research transport", content="Metro line 15 opens."),
                ResponseRule(pattern="^Research housing", content="Rents up 3 percent."),
                ResponseRule(pattern=r"Notes so far: \[\]", content="Three topics to research."),
            ),
            content="Research done, over to the analyst.",
        ),
        ANALYST_MODEL: ModelScript(
            sequence=(
                ScriptedReply(
                    tool_calls=(
                        ToolCallScript(name="get_weather", arguments={"city": "Paris"}, id="c1"),
                        ToolCallScript(name="get_population", arguments={"city": "Paris"}, id="c2"),
                    )
                ),
                "Paris: sunny, about 2.1 million people.",
            )
        ),
    }


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city."""
    return f"Sunny in {city}."


@tool
def get_population(city: str) -> str:
    """Return the population of a city."""
    return f"{city}: 2.1 million."


_print_lock = threading.Lock()


def say(line: str) -> None:
    """Print one line (researchers run in parallel threads)."""
    with _print_lock:
        print(line, flush=True)


class State(TypedDict):
    visits: int
    notes: Annotated[list[str], operator.add]
    messages: Annotated[list[AnyMessage], add_messages]


class Topic(TypedDict):
    topic: str


def build(client: openai.OpenAI) -> CompiledStateGraph:
    """Build the graph."""

    def ask(model: str, prompt: str) -> openai.types.chat.ChatCompletion:
        return client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], tools=TOOL_SPECS
        )

    def supervisor(state: State) -> Command[Literal["analyst"]] | dict[str, int]:
        reply = ask(SUPERVISOR_MODEL, f"Plan the report. Notes so far: {state['notes']}")
        say(f"supervisor (visit {state['visits'] + 1}): {reply.choices[0].message.content}")
        if state["visits"] == 0:
            return {"visits": 1}
        return Command(goto="analyst", update={"visits": state["visits"] + 1})

    def fan_out(state: State) -> list[Send] | str:
        if state["visits"] == 1 and not state["notes"]:
            return [Send("researcher", {"topic": t}) for t in TOPICS]
        return END

    def researcher(packet: Topic) -> dict[str, list[str]]:
        reply = ask(SUPERVISOR_MODEL, f"Research {packet['topic']}.")
        say(f"researcher[{packet['topic']}]: {reply.choices[0].message.content}")
        return {"notes": [packet["topic"]]}

    def analyst(state: State) -> dict[str, list[AnyMessage]]:
        results = [m.content for m in state["messages"] if isinstance(m, ToolMessage)]
        reply = ask(ANALYST_MODEL, f"Analyse Paris. Tool results: {results}")
        message = reply.choices[0].message
        calls = [
            {"name": c.function.name, "args": json.loads(c.function.arguments), "id": c.id}
            for c in message.tool_calls or []
            if c.type == "function"
        ]
        names = ", ".join(c["name"] for c in calls)
        say(f"analyst: {'calls ' + names if calls else message.content}")
        return {"messages": [AIMessage(content=message.content or "", tool_calls=calls)]}

    graph = StateGraph(State)
    graph.add_node("supervisor", supervisor)
    graph.add_node("researcher", researcher)
    graph.add_node("analyst", analyst)
    graph.add_node("tools", ToolNode([get_weather, get_population]))
    graph.add_edge(START, "supervisor")
    graph.add_conditional_edges("supervisor", fan_out, ["researcher", END])
    graph.add_edge("researcher", "supervisor")
    graph.add_conditional_edges("analyst", tools_condition)
    graph.add_edge("tools", "analyst")
    return graph.compile(name="supervisor_tools")


TOOL_SPECS: list[openai.types.chat.ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": t.name,
            "description": t.description,
            "parameters": t.args_schema.model_json_schema(),  # type: ignore[union-attr]
        },
    }
    for t in (get_weather, get_population)
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", default=None, help="default: an in-process fake provider")
    args = parser.parse_args()
    with ExitStack() as stack:
        base_url = args.base_url
        if base_url is None:
            base_url = stack.enter_context(FakeProviderThread(scripts())).openai_base_url
        client = openai.OpenAI(base_url=base_url, api_key="offline-key", max_retries=0)
        result = build(client).invoke(
            {"visits": 0, "notes": [], "messages": []},
            {"configurable": {"thread_id": "example-thread"}},
        )
    print(f"notes: {sorted(result['notes'])}")
    print(f"answer: {result['messages'][-1].content}")


if __name__ == "__main__":
    main()
