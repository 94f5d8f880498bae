import random
from dataclasses import replace

import pytest

from agentmesh.collector import INFERRED, GraphBuilder, RunGraph, SpanEventRecord, SpanRecord
from agentmesh.collector.graph.builder import MAX_WORKFLOW_LABELS, NO_WORKFLOW, OTHER_WORKFLOWS
from agentmesh.collector.graph.node import graph_node
from agentmesh.collector.model import AttributeValue
from agentmesh.collector.testing import ManualClock, SpanFactory, failed
from agentmesh.core import CollectorError, semconv


def _graph(builder: GraphBuilder, trace_id: str) -> RunGraph:
    graph = builder.get(trace_id)
    assert graph is not None
    return graph


def _supervisor_run(f: SpanFactory) -> list[SpanRecord]:
    # workflow > supervisor(chat) > researcher(chat, chat) > supervisor(chat), explicit handoffs
    root = f.workflow("research", run_id="run-1", framework="langgraph")
    s1 = f.agent("supervisor", parent=root, run_id="run-1")
    c1 = f.chat(parent=s1, input_tokens=100, output_tokens=10, cost_usd=0.01)
    r1 = f.agent(
        "researcher",
        parent=root,
        handoff_from="supervisor",
        handoff_kind="command",
        context_digest="sha256:abc",
        context_size=42,
    )
    tool = f.span("execute_tool web_search", parent=r1)  # chat nested under a tool span
    c2 = f.chat(parent=tool, input_tokens=200, output_tokens=20, cost_usd=0.02)
    c3 = f.chat(parent=r1, input_tokens=300, output_tokens=30, cost_usd=0.03)
    s2 = f.agent("supervisor", parent=root, handoff_from="researcher")
    c4 = f.chat(parent=s2, input_tokens=1, output_tokens=1, cost_usd=0.001)
    return [root, s1, c1, r1, tool, c2, c3, s2, c4]


def test_rolls_up_agents_handoffs_and_totals() -> None:
    f = SpanFactory(service_name="app")
    spans = _supervisor_run(f)
    builder = GraphBuilder()
    assert builder.add(spans) == {f.trace_id}
    graph = _graph(builder, f.trace_id)

    assert graph.run_id == "run-1"
    assert graph.workflow_name == "research"
    assert graph.service_name == "app"
    assert graph.framework == "langgraph"
    assert graph.complete
    assert graph.span_count == 9
    assert graph.start_ns == spans[0].start_ns
    assert graph.end_ns == max(s.end_ns for s in spans)

    supervisor, researcher = graph.agents["supervisor"], graph.agents["researcher"]
    assert supervisor.invocations == 2
    assert supervisor.span_ids == (spans[1].span_id, spans[7].span_id)
    assert (supervisor.llm_calls, supervisor.input_tokens, supervisor.output_tokens) == (2, 101, 11)
    assert supervisor.cost_usd == pytest.approx(0.011)
    assert (researcher.llm_calls, researcher.input_tokens, researcher.output_tokens) == (2, 500, 50)
    assert researcher.cost_usd == pytest.approx(0.05)

    assert (graph.llm_calls, graph.input_tokens, graph.output_tokens) == (4, 601, 61)
    assert graph.cost_usd == pytest.approx(0.061)

    first, second = graph.handoffs
    assert (first.seq, first.source, first.target, first.kind) == (
        0,
        "supervisor",
        "researcher",
        "command",
    )
    assert (first.context_digest, first.context_size) == ("sha256:abc", 42)
    assert first.span_id == spans[3].span_id
    assert (second.seq, second.source, second.target) == (1, "researcher", "supervisor")
    assert second.kind == "edge"
    assert not graph.handoffs_inferred


def test_any_arrival_order_and_batching_gives_the_same_graph() -> None:
    f = SpanFactory()
    spans = _supervisor_run(f)
    reference = GraphBuilder()
    reference.add(spans)
    expected = _graph(reference, f.trace_id)
    rng = random.Random(7)
    for _ in range(20):
        shuffled = spans[:]
        rng.shuffle(shuffled)
        builder = GraphBuilder()
        cut = rng.randrange(1, len(shuffled))
        builder.add(shuffled[:cut])
        builder.add(shuffled[cut:])
        assert _graph(builder, f.trace_id) == expected


def test_late_agent_span_gets_its_earlier_chat_spans() -> None:
    f = SpanFactory()
    root = f.workflow("w")
    agent = f.agent("researcher", parent=root)
    tool = f.span("execute_tool search", parent=agent)
    chat = f.chat(parent=tool, input_tokens=7, output_tokens=3, cost_usd=0.5)
    builder = GraphBuilder()

    builder.add([chat])
    early = _graph(builder, f.trace_id)
    assert early.llm_calls == 1  # counted in the totals already
    assert early.input_tokens == 7
    assert early.agents == {}
    assert not early.complete

    builder.add([agent])  # the tool span between them is still missing
    middle = _graph(builder, f.trace_id)
    assert middle.agents["researcher"].llm_calls == 0

    assert builder.add([tool, root]) == {f.trace_id}
    late = _graph(builder, f.trace_id)
    researcher = late.agents["researcher"]
    assert (researcher.llm_calls, researcher.input_tokens, researcher.output_tokens) == (1, 7, 3)
    assert researcher.cost_usd == 0.5
    assert late.complete


def test_nearest_agent_ancestor_owns_the_call() -> None:
    f = SpanFactory()
    outer = f.agent("supervisor", parent=None)
    inner = f.agent("researcher", parent=outer)  # an agent used as a tool
    chat = f.chat(parent=inner, input_tokens=4)
    builder = GraphBuilder()
    builder.add([outer, inner, chat])
    graph = _graph(builder, f.trace_id)
    assert graph.agents["researcher"].input_tokens == 4
    assert graph.agents["supervisor"].input_tokens == 0


def test_infers_handoffs_from_agent_order_without_explicit_attributes() -> None:
    f = SpanFactory()
    root = f.workflow("w")
    names = ["supervisor", "supervisor", "researcher", "writer", "supervisor"]
    agents = [f.agent(name, parent=root) for name in names]
    builder = GraphBuilder()
    builder.add(list(reversed([root, *agents])))
    graph = _graph(builder, f.trace_id)
    assert [(e.seq, e.source, e.target, e.kind) for e in graph.handoffs] == [
        (0, "supervisor", "researcher", INFERRED),
        (1, "researcher", "writer", INFERRED),
        (2, "writer", "supervisor", INFERRED),
    ]
    assert [e.span_id for e in graph.handoffs] == [a.span_id for a in agents[2:]]
    assert graph.handoffs_inferred
    visits = graph.agent_sequence()
    assert [v.agent for v in visits] == ["supervisor", "researcher", "writer", "supervisor"]
    assert visits[0].span_ids == (agents[0].span_id, agents[1].span_id)


def test_explicit_handoffs_replace_inferred_ones_when_they_arrive() -> None:
    f = SpanFactory()
    root = f.workflow("w")
    a = f.agent("a", parent=root)
    b = f.agent("b", parent=root)
    c = f.agent("c", parent=root, handoff_from="a")
    builder = GraphBuilder()
    builder.add([root, a, b])
    assert [e.kind for e in _graph(builder, f.trace_id).handoffs] == [INFERRED]
    builder.add([c])
    handoffs = _graph(builder, f.trace_id).handoffs
    assert [(e.source, e.target, e.kind) for e in handoffs] == [("a", "c", "edge")]


def test_handoffs_ordered_by_receiving_span_start_not_arrival() -> None:
    f = SpanFactory()
    root = f.workflow("w")
    first = f.agent("b", parent=root, handoff_from="a", start_ns=100)
    second = f.agent("c", parent=root, handoff_from="b", start_ns=200)
    builder = GraphBuilder()
    builder.add([second])
    builder.add([first, root])
    graph = _graph(builder, f.trace_id)
    assert [(e.seq, e.target) for e in graph.handoffs] == [(0, "b"), (1, "c")]


def test_run_id_falls_back_to_trace_id() -> None:
    f = SpanFactory()
    builder = GraphBuilder()
    builder.add([f.agent("solo", parent=None)])
    graph = _graph(builder, f.trace_id)
    assert graph.run_id == f.trace_id
    assert graph.workflow_name is None
    assert graph.handoffs == []


def test_run_attributes_prefer_the_workflow_span() -> None:
    f = SpanFactory()
    agent = f.agent("a", parent=None, run_id="from-agent")
    root = f.workflow("w", run_id="from-workflow")
    builder = GraphBuilder()
    builder.add([agent, root])
    assert _graph(builder, f.trace_id).run_id == "from-workflow"


def test_redelivered_spans_change_nothing() -> None:
    f = SpanFactory()
    spans = _supervisor_run(f)
    builder = GraphBuilder()
    builder.add(spans)
    before = _graph(builder, f.trace_id)
    assert builder.add(spans[:4]) == set()
    assert _graph(builder, f.trace_id) is before


def test_groups_spans_of_several_traces() -> None:
    f1, f2 = SpanFactory(), SpanFactory()
    builder = GraphBuilder()
    changed = builder.add([f1.workflow("one"), f2.workflow("two")])
    assert changed == {f1.trace_id, f2.trace_id}
    assert _graph(builder, f1.trace_id).workflow_name == "one"
    assert _graph(builder, f2.trace_id).workflow_name == "two"


def test_evicts_least_recently_updated_trace_and_counts_it() -> None:
    factories = [SpanFactory() for _ in range(3)]
    builder = GraphBuilder(max_traces=2)
    builder.add([factories[0].workflow("0")])
    builder.add([factories[1].workflow("1")])
    builder.add([factories[0].agent("a", parent=None)])  # trace 0 is now the most recent
    changed = builder.add([factories[2].workflow("2")])
    assert changed == {factories[2].trace_id}
    assert len(builder) == 2
    assert builder.evicted == 1
    assert factories[1].trace_id not in builder
    assert builder.get(factories[1].trace_id) is None
    assert builder.get(factories[0].trace_id) is not None
    assert builder.take_left_traces() == [factories[1].trace_id]
    # a later span of the evicted run is late: not graphed alone, named for a rebuild
    assert builder.add([factories[1].agent("b", parent=None)]) == set()
    assert builder.take_late_traces() == {factories[1].trace_id}
    assert (len(builder), builder.evicted) == (2, 1)


def test_one_batch_bigger_than_the_bound_only_reports_held_traces() -> None:
    factories = [SpanFactory() for _ in range(3)]
    builder = GraphBuilder(max_traces=1)
    changed = builder.add([f.workflow("w") for f in factories])
    assert changed == {factories[2].trace_id}
    assert builder.evicted == 2
    # the two evicted within the call never had a graph taken: named for a rebuild
    assert builder.take_late_traces() == {factories[0].trace_id, factories[1].trace_id}


def test_bound_must_be_positive() -> None:
    with pytest.raises(CollectorError):
        GraphBuilder(max_traces=0)


def test_span_without_agent_name_uses_span_name() -> None:
    f = SpanFactory()
    span = f.span(
        "invoke_agent mystery",
        attributes={semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_AGENT},
    )
    builder = GraphBuilder()
    builder.add([span])
    assert list(_graph(builder, f.trace_id).agents) == ["invoke_agent mystery"]


def test_parent_cycles_do_not_hang() -> None:
    f = SpanFactory()
    a = f.agent("a", parent=None)
    x = SpanRecord(
        trace_id=f.trace_id,
        span_id="00000000000000aa",
        parent_span_id="00000000000000bb",
        name="x",
        kind="internal",
        start_ns=1,
        end_ns=2,
    )
    y = SpanRecord(
        trace_id=f.trace_id,
        span_id="00000000000000bb",
        parent_span_id="00000000000000aa",
        name="y",
        kind="internal",
        start_ns=1,
        end_ns=2,
    )
    chat = f.chat(parent=x, input_tokens=1)
    builder = GraphBuilder()
    builder.add([a, x, y, chat])
    graph = _graph(builder, f.trace_id)
    assert graph.llm_calls == 1
    assert graph.agents["a"].llm_calls == 0


def _long_run(f: SpanFactory, rng: random.Random, spans: int, explicit: bool) -> list[SpanRecord]:
    root = f.workflow("long", run_id="run-long")
    out = [root]
    previous: str | None = None
    while len(out) < spans:
        name = rng.choice(["supervisor", "researcher", "writer", "critic"])
        agent = f.agent(name, parent=root, handoff_from=previous if explicit else None)
        out.append(agent)
        tool = f.span("execute_tool search", parent=agent)
        out.append(tool)
        for parent in (agent, tool):
            out.append(
                f.chat(
                    parent=parent,
                    input_tokens=rng.randint(1, 100),
                    output_tokens=rng.randint(1, 10),
                    cost_usd=rng.random(),
                )
            )
        previous = name
    return out


@pytest.mark.parametrize("explicit", [True, False])
def test_long_trace_in_100_random_batches_gives_the_one_batch_graph(explicit: bool) -> None:
    rng = random.Random(11)
    f = SpanFactory()
    spans = _long_run(f, rng, 5000, explicit)
    whole = GraphBuilder()
    whole.add(spans)
    expected = _graph(whole, f.trace_id)

    shuffled = spans[:]
    rng.shuffle(shuffled)
    builder = GraphBuilder()
    for i in range(0, len(shuffled), 50):
        builder.add(shuffled[i : i + 50])
        _graph(builder, f.trace_id)  # a snapshot after each batch, as the pipeline takes
    graph = _graph(builder, f.trace_id)

    assert graph == expected
    assert graph.agent_sequence() == expected.agent_sequence()
    assert graph.span_count == len(spans)
    assert sum(a.llm_calls for a in graph.agents.values()) == graph.llm_calls
    assert graph.handoffs_inferred is not explicit
    assert len(graph.handoffs) == len(expected.agent_sequence()) - 1 or explicit


def test_late_spans_update_only_the_tail_and_report_where_visits_changed() -> None:
    f = SpanFactory()
    root = f.workflow("w")
    agents = [f.agent(name, parent=root) for name in ["a", "b", "a", "b", "c", "d"]]
    builder = GraphBuilder()
    builder.add([root, *agents[:4]])
    first = _graph(builder, f.trace_id)
    builder.add(agents[4:])
    second = _graph(builder, f.trace_id)
    assert second.generation == first.generation + 1
    assert second.visits_changed_from == 3  # visits 0-2 unchanged; the one holding b onward
    assert [v.agent for v in second.agent_sequence()] == ["a", "b", "a", "b", "c", "d"]
    # Between the 1st and the 2nd, once the 1st ended (a span overlapping it would run beside
    # it, in a lane of its own).
    late = f.agent("z", parent=root, start_ns=agents[0].end_ns)
    builder.add([late])
    third = _graph(builder, f.trace_id)
    assert third.visits_changed_from == 0
    assert [v.agent for v in third.agent_sequence()] == ["a", "z", "b", "a", "b", "c", "d"]
    assert [(h.source, h.target) for h in third.handoffs][:2] == [("a", "z"), ("z", "b")]


def test_a_span_resent_with_other_content_rebuilds_the_trace() -> None:
    f = SpanFactory()
    root = f.workflow("w")
    agent = f.agent("a", parent=root)
    chat = f.chat(parent=agent, input_tokens=5)
    builder = GraphBuilder()
    builder.add([root, agent, chat])
    renamed = replace(agent)  # the same span, another object
    builder.add([renamed])
    assert _graph(builder, f.trace_id).agents["a"].input_tokens == 5
    moved = replace(agent, attributes={**agent.attributes, semconv.GEN_AI_AGENT_NAME: "b"})
    builder.add([moved])
    graph = _graph(builder, f.trace_id)
    assert set(graph.agents) == {"b"}
    assert graph.agents["b"].input_tokens == 5
    assert graph.span_count == 3


def test_workflow_steps_that_are_not_agents_take_part_like_agents() -> None:
    f = SpanFactory()
    root = f.workflow("ReviewFlow", run_id="run-flow")

    def step(name: str, source: str | None) -> SpanRecord:
        attributes: dict[str, AttributeValue] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.Operation.INVOKE_NODE,
            semconv.GEN_AI_NODE_NAME: name,
        }
        if source is not None:
            attributes[semconv.GEN_AI_AGENT_HANDOFF_SOURCE_NAME] = source
            attributes[semconv.GEN_AI_AGENT_HANDOFF_TARGET_NAME] = name
            attributes[semconv.AGENTMESH_HANDOFF_KIND] = "conditional"
        return f.span(f"invoke_node {name}", parent=root, attributes=attributes)

    spans = [root, step("draft", None), step("review", "draft"), step("publish", "review")]
    builder = GraphBuilder()
    builder.add(spans)
    graph = builder.get(f.trace_id)
    assert graph is not None
    assert list(graph.agents) == ["draft", "review", "publish"]
    assert [(h.source, h.target, h.kind) for h in graph.handoffs] == [
        ("draft", "review", "conditional"),
        ("review", "publish", "conditional"),
    ]


def test_complete_traces_retire_after_lingering_and_late_spans_are_not_graphed() -> None:
    clock = ManualClock(1000.0)
    builder = GraphBuilder(complete_linger_seconds=30, idle_timeout_seconds=600, clock=clock)
    done, running = SpanFactory(), SpanFactory()
    root = done.workflow("w", run_id="done")
    agent = done.agent("a", parent=root)
    builder.add([agent, root])
    builder.add([running.agent("b", parent=running.workflow("w"))])  # its root is missing
    clock.now += 29
    assert builder.expire() == []
    clock.now += 1
    assert builder.expire() == [done.trace_id]
    assert (builder.retired, builder.expired, len(builder)) == (1, 0, 1)
    assert builder.take_left_traces() == [done.trace_id]
    late = done.chat(parent=agent, input_tokens=5)
    assert builder.add([late]) == set()
    assert done.trace_id not in builder
    assert builder.late_spans == 1
    assert builder.take_late_traces() == {done.trace_id}  # for the pipeline to rebuild
    assert builder.take_late_traces() == set()
    clock.now += 600
    assert builder.expire() == [running.trace_id]
    assert (builder.retired, builder.expired, len(builder)) == (1, 1, 0)
    # spans of an expired run are late too: a graph of them alone would be a fragment
    assert builder.add([running.chat(parent=None)]) == set()
    assert (builder.late_spans, builder.take_late_traces()) == (2, {running.trace_id})
    assert builder.take_left_traces() == [running.trace_id]


def test_a_touched_trace_lingers_again() -> None:
    clock = ManualClock(1000.0)
    builder = GraphBuilder(complete_linger_seconds=30, clock=clock)
    f = SpanFactory()
    root = f.workflow("w")
    builder.add([root])
    clock.now += 20
    builder.add([f.agent("a", parent=root)])
    clock.now += 20
    assert builder.expire() == []  # 20 s since its last span
    clock.now += 10
    assert builder.expire() == [f.trace_id]


def test_linger_longer_than_idle_is_refused() -> None:
    with pytest.raises(CollectorError, match="complete_linger_seconds"):
        GraphBuilder(complete_linger_seconds=60, idle_timeout_seconds=30)


def test_a_run_fails_when_its_root_span_ends_in_error_and_names_the_step_it_left_through() -> None:
    f = SpanFactory()
    root = f.workflow("research", run_id="run-1")
    # the researcher failed once and was retried; the writer failed because its tool did
    first_try = failed(f.agent("researcher", parent=root), "Timeout")
    retry = f.agent("researcher", parent=root)
    writer = f.agent("writer", parent=root)
    tool = failed(f.tool("publish", parent=writer), "PermissionError")
    writer = failed(replace(writer, end_ns=tool.end_ns + 5), "PermissionError")
    broken = failed(replace(root, end_ns=writer.end_ns + 5), "PermissionError")
    builder = GraphBuilder()
    builder.add([first_try, retry, tool])
    graph = _graph(builder, root.trace_id)
    assert (graph.complete, graph.failed, graph.error) == (False, False, None)  # still running
    builder.add([writer, broken])
    graph = _graph(builder, root.trace_id)
    failure = "step 'writer' failed: PermissionError in tool 'publish'"
    assert (graph.complete, graph.error) == (True, failure)
    # the same steps under a root that ended well: the app caught the error
    fine = GraphBuilder()
    fine.add([first_try, retry, tool, writer, root])
    assert _graph(fine, root.trace_id).error is None
    # a root in error with no failed step below it names its own error type
    alone = SpanFactory()
    lone_root = failed(alone.workflow("research"), "KeyboardInterrupt")
    bare = GraphBuilder()
    bare.add([lone_root, alone.agent("researcher", parent=lone_root)])
    assert _graph(bare, lone_root.trace_id).error == "KeyboardInterrupt"
    # (any arrival order: a span re-sent rebuilds the trace the same way)
    again = GraphBuilder()
    spans = [first_try, retry, tool, writer, broken]
    random.Random(7).shuffle(spans)
    again.add(spans)
    assert _graph(again, root.trace_id).error == failure


def test_a_failed_step_names_the_tool_it_failed_through_only_when_the_error_is_the_tools() -> None:
    f = SpanFactory()
    root = f.workflow("research")
    node = f.agent("tools", parent=root)
    # the tool ran under a chain span inside the node (a grandchild) and raised
    chain = f.span("chain", parent=node)
    lookup = failed(f.tool("lookup", parent=chain), "ValueError")
    node = failed(replace(node, end_ns=lookup.end_ns + 5), "ValueError")
    broken = failed(replace(root, end_ns=node.end_ns + 5), "ValueError")
    deep = GraphBuilder()
    deep.add([broken, node, chain, lookup])
    assert _graph(deep, root.trace_id).error == "step 'tools' failed: ValueError in tool 'lookup'"
    # the tool's error was handled and the node failed with another one: the tool is not named
    other = GraphBuilder()
    other.add([failed(broken, "KeyError"), failed(node, "KeyError"), chain, lookup])
    assert _graph(other, root.trace_id).error == "step 'tools' failed: KeyError"
    # a tool that failed in another step is not named
    g = SpanFactory()
    top = g.workflow("research")
    searcher = g.agent("searcher", parent=top)
    search = failed(g.tool("search", parent=searcher), "ValueError")
    writer = failed(g.agent("writer", parent=top), "ValueError")
    writer = replace(writer, start_ns=search.end_ns + 5, end_ns=search.end_ns + 50)
    top = failed(replace(top, end_ns=writer.end_ns + 5), "ValueError")
    elsewhere = GraphBuilder()
    elsewhere.add([top, searcher, search, writer])
    assert _graph(elsewhere, top.trace_id).error == "step 'writer' failed: ValueError"
    # LangGraph's ToolNode is itself a tool span: the innermost tool is named, and of a tool
    # retried inside it, the try that ended last
    h = SpanFactory()
    run = h.workflow("research")
    tools = h.tool("tools", parent=run)
    first = failed(h.tool("lookup", parent=tools), "ValueError")
    second = failed(h.tool("fetch", parent=tools), "ValueError")
    second = replace(second, start_ns=first.end_ns + 1, end_ns=first.end_ns + 9)
    tools = failed(replace(tools, end_ns=second.end_ns + 5), "ValueError")
    run = failed(replace(run, end_ns=tools.end_ns + 5), "ValueError")
    spans = [run, tools, first, second]
    random.Random(3).shuffle(spans)
    node_of_tools = GraphBuilder()
    node_of_tools.add(spans)
    assert _graph(node_of_tools, run.trace_id).error == (
        "step 'tools' failed: ValueError in tool 'fetch'"
    )


def test_finished_and_failed_runs_are_counted_once_each() -> None:
    builder = GraphBuilder()
    good, bad = SpanFactory(), SpanFactory()
    good_root = good.workflow("research")
    bad_root = bad.workflow("research")
    builder.add([good.agent("writer", parent=good_root)])
    assert (builder.runs_finished, builder.runs_failed) == (0, 0)  # no root yet: running
    builder.add([good_root, failed(bad_root, "Boom")])
    assert (builder.runs_finished, builder.runs_failed) == (2, 1)
    # later spans, a re-delivered root and a span re-sent with other content (a rebuild)
    late = bad.agent("writer", parent=bad_root)
    builder.add([late, failed(bad_root, "Boom"), good_root])
    builder.add([replace(late, end_ns=late.end_ns + 1)])
    assert (builder.runs_finished, builder.runs_failed) == (2, 1)
    assert builder.runs_by_workflow == {"research": (2, 1)}


def test_runs_are_counted_by_workflow_with_a_bound_on_the_names() -> None:
    builder = GraphBuilder(max_traces=10_000)
    for index in range(MAX_WORKFLOW_LABELS + 3):
        f = SpanFactory()
        root = f.workflow(f"flow-{index}")
        builder.add([failed(root, "Boom") if index % 2 else root])
    bare = SpanFactory()
    builder.add([bare.span("app", attributes={})])  # the app's own root span: no workflow
    counts = builder.runs_by_workflow
    assert len(counts) == MAX_WORKFLOW_LABELS + 2
    assert counts["flow-0"] == (1, 0)
    assert counts["flow-1"] == (1, 1)
    assert counts[OTHER_WORKFLOWS] == (3, 1)  # flow-200, flow-201 (failed), flow-202
    assert counts[NO_WORKFLOW] == (1, 0)


def test_a_tool_span_without_a_tool_name_is_named_from_its_span_name() -> None:
    # LangGraph's ToolNode: an execute_tool span "execute_tool tools" with no gen_ai.tool.name
    f = SpanFactory()
    root = f.workflow("research")
    node = f.span(
        "execute_tool tools",
        parent=root,
        attributes={semconv.GEN_AI_OPERATION_NAME: semconv.Operation.EXECUTE_TOOL},
    )
    builder = GraphBuilder()
    builder.add([failed(root, "ValueError"), failed(node, "ValueError")])
    assert _graph(builder, root.trace_id).error == "step 'tools' failed: ValueError"
    assert graph_node(f.tool("lookup", parent=root)).tool_name == "lookup"


def test_a_run_whose_root_span_was_interrupted_is_interrupted_not_failed() -> None:
    f = SpanFactory()
    root = f.workflow("research")
    ctrl_c = SpanEventRecord("exception", root.end_ns, {"exception.type": "KeyboardInterrupt"})
    builder = GraphBuilder()
    builder.add([replace(root, events=(ctrl_c,)), f.agent("writer", parent=root)])
    graph = _graph(builder, root.trace_id)
    assert (graph.complete, graph.error, graph.interrupted) == (True, None, "KeyboardInterrupt")
    assert (builder.runs_finished, builder.runs_failed) == (1, 0)
