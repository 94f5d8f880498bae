// The AgentMesh dashboard: a page over the collector's query API (/v1/runs, /v1/runs/{run},
// /v1/runs/{run}/spans, /v1/runs/{run}/decisions, /v1/detections, /v1/costs, /v1/decisions)
// and the route table (/v1/route-table). Every value from the API reaches the page as text
// (textContent and attributes, never HTML), so span names and attributes cannot inject markup.

const TOKEN_KEY = "agentmesh.token";
const REFRESH_MS = 5000;
const MAX_TIMELINE_ROWS = 2000;
const PAGE = Number(new URLSearchParams(location.search).get("page_size")) || 200; // runs a page
// detections a page (the same ?page_size= sets both, for a quick look at paging)
const DETECTIONS_PAGE = Number(new URLSearchParams(location.search).get("page_size")) || 500;
const SVG = "http://www.w3.org/2000/svg";

const state = {
  since: localStorage.getItem("agentmesh.since") ?? "24h",
  costsBy: localStorage.getItem("agentmesh.costsBy") ?? "agent",
  selectedSpan: null,
  showMarkers: false,
  detectionType: "",
  decisionTask: "",
  openDecision: null, // the decision whose details are shown
  settled: false,
  etags: new Map(), // path -> { etag, body } of the answers asked for conditionally
  ticks: 0,
  filter: "",
  before: [], // start times the runs list paged back from (the newest page when empty)
  detectionsBefore: [], // cursors the detections list paged back from (likewise)
  detectionTypes: new Set(), // every type seen, for the type filter while it narrows the list
  filterTimer: null,
  timer: null,
  renderId: 0,
};

class AuthError extends Error {}

// ---- small helpers --------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const number = new Intl.NumberFormat();

function fmtInt(value) {
  return number.format(value ?? 0);
}

function fmtCost(usd) {
  if (!usd) return "$0";
  if (usd >= 100) return "$" + usd.toFixed(0);
  if (usd >= 0.1) return "$" + usd.toFixed(2);
  return "$" + usd.toPrecision(2);
}

function fmtDuration(ns) {
  const ms = Math.max(0, ns) / 1e6;
  if (ms < 1) return (ms * 1000).toFixed(0) + " µs";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + " ms";
  const seconds = ms / 1000;
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function fmtTime(ns) {
  return new Date(ns / 1e6).toLocaleString();
}

function fmtAgo(ns) {
  const seconds = (Date.now() - ns / 1e6) / 1000;
  if (seconds < 60) return "just now";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return `${Math.floor(seconds / 86400)} d ago`;
}

function short(id, length = 12) {
  return id && id.length > length ? id.slice(0, length) + "…" : id ?? "";
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind}` }, text);
}

function card(label, value, extra) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value), extra ? h("div", { class: "muted" }, extra) : null);
}

function section(title, id, ...children) {
  return h("section", { id }, h("h2", {}, title), ...children);
}

function table(columns, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map(([label, cls]) => h("th", { class: cls }, label)))),
    h("tbody", {}, rows));
}

// ---- the API --------------------------------------------------------------------------------

function authHeaders() {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    headers.Authorization = "Bearer " + token;
    headers["x-api-key"] = token;
  }
  return headers;
}

async function api(path, { conditional = false } = {}) {
  // conditional: send the last answer's ETag and reuse that answer on 304 (for large documents
  // that seldom change, such as a route table carrying a learned predictor)
  const headers = authHeaders();
  const cached = conditional ? state.etags.get(path) : undefined;
  if (cached) headers["If-None-Match"] = cached.etag;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new AuthError((await response.text()).trim());
  if (response.status === 304 && cached) return cached.body;
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${path} answered HTTP ${response.status}, not JSON`);
  }
  if (!response.ok) throw new Error(body.error ?? `${path} answered HTTP ${response.status}`);
  const etag = response.headers.get("ETag");
  if (conditional && etag) state.etags.set(path, { etag, body });
  return body;
}

function showError(message) {
  const banner = document.getElementById("error");
  banner.hidden = !message;
  banner.textContent = message ?? "";
}

function tokenForm(problem) {
  const input = h("input", { type: "password", id: "token", autocomplete: "off",
    placeholder: "bearer token or API key", required: true });
  const form = h("form", { id: "token-form", class: "token-form", onsubmit: (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    render();
  } },
  h("h2", {}, "This collector needs credentials"),
  problem ? h("p", { id: "token-problem" }, problem) : null,
  h("p", { class: "muted" }, "Enter one of the collector's bearer tokens or API keys. It is "
    + "kept in this tab only (session storage) and sent to this collector's API alone."),
  input, h("button", { type: "submit" }, "Use it"));
  return form;
}

// ---- views ----------------------------------------------------------------------------------

const SINCE = [["15m", "15 min"], ["1h", "1 hour"], ["24h", "24 hours"], ["7d", "7 days"],
  ["", "all"]];

function sinceSelect(onChange) {
  return h("select", { id: "since", "aria-label": "time range", onchange: (event) => {
    state.since = event.target.value;
    state.before = [];
    state.detectionsBefore = [];
    localStorage.setItem("agentmesh.since", state.since);
    onChange();
  } }, SINCE.map(([value, label]) =>
    h("option", { value, selected: value === state.since }, label)));
}

function runState(run) {
  // what the runs list calls a run (GET /v1/runs names it: state): paused (waiting for input),
  // failed (its root span ended in error), resumed (it paused or failed and a later run
  // continued it), complete, or live; derived from the fields when a collector sends no state
  if (run.state) return run.state;
  if (run.paused || run.error || run.interrupted) {
    if (run.resumptions) return "resumed";
    return run.paused ? "paused" : run.error ? "failed" : "interrupted";
  }
  return run.complete ? "complete" : "live";
}

const STATE_TONES = { paused: "warn", resumed: "ok", failed: "bad", interrupted: "warn",
  complete: "ok", live: "live" };

function filterInput() {
  const input = h("input", { type: "search", id: "filter", value: state.filter,
    placeholder: "filter: run, workflow, agent, state", "aria-label": "filter runs" });
  input.addEventListener("input", () => {
    state.filter = input.value;
    clearTimeout(state.filterTimer);
    state.filterTimer = setTimeout(() => render({ quiet: true }), 150);
  });
  return input;
}

async function runsView() {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (state.since) query.set("since", state.since);
  const before = state.before.at(-1);
  if (before) query.set("before", before);
  const { runs, next_before: next } = await api(`/v1/runs?${query}`);
  const pager = h("div", { class: "pager" },
    state.before.length ? h("button", { type: "button", id: "newer", onclick: () => {
      state.before.pop();
      render();
    } }, "← newer") : null,
    next ? h("button", { type: "button", id: "older", onclick: () => {
      state.before.push(next);
      render();
    } }, "older →") : null);
  const cost = runs.reduce((sum, r) => sum + r.cost_usd, 0);
  const live = runs.filter((r) => !r.complete && !r.paused).length;
  const flagged = runs.filter((r) => r.detections > 0).length;
  const filter = state.filter.trim().toLowerCase();
  const shown = filter ? runs.filter((r) => [r.run_id, r.trace_id, r.workflow_name ?? "",
    r.service_name ?? "", ...r.agents].some((text) => text.toLowerCase().includes(filter))
    || runState(r) === filter) : runs;
  const rows = shown.map((r) => h("tr", { class: "run-row", "data-run": r.run_id, tabindex: 0,
    onclick: () => { location.hash = `#/runs/${encodeURIComponent(r.run_id)}`; },
    onkeydown: (event) => {
      if (event.key === "Enter") location.hash = `#/runs/${encodeURIComponent(r.run_id)}`;
    } },
  h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}` }, r.run_id)),
  h("td", {}, r.workflow_name ?? "—"),
  h("td", { title: fmtTime(r.start_ns) }, fmtAgo(r.start_ns)),
  h("td", { class: "num" }, fmtDuration(r.end_ns - r.start_ns)),
  h("td", { class: "agents" }, r.agents.join(", ")),
  h("td", { class: "num" }, fmtInt(r.handoffs)),
  h("td", { class: "num" }, fmtInt(r.llm_calls)),
  h("td", { class: "num" }, fmtInt(r.input_tokens + r.output_tokens)),
  h("td", { class: "num" }, fmtCost(r.cost_usd)),
  h("td", {}, badge(runState(r), STATE_TONES[runState(r)])),
  h("td", { class: "num" }, r.detections ? badge(String(r.detections), "bad") : "0")));
  return [
    h("div", { class: "toolbar" }, h("h1", {}, "Runs"), h("span", { class: "spacer" }),
      filterInput(), sinceSelect(render)),
    h("div", { class: "cards" },
      card("runs", fmtInt(runs.length), state.before.length ? `page ${state.before.length + 1}`
        : runs.length === PAGE ? `the newest ${PAGE}` : null),
      card("cost", fmtCost(cost)),
      card("live", fmtInt(live)),
      card("with detections", fmtInt(flagged))),
    runs.length === 0
      ? h("p", { class: "empty" }, "No runs in this range. Point an OTLP exporter at this "
        + "collector's /v1/traces (or gRPC port 4317), or try `agentmesh demo`.")
      : shown.length === 0 ? h("p", { class: "empty" }, `No run matches “${state.filter}”.`)
      : table([["run"], ["workflow"], ["started"], ["duration", "num"], ["agents"],
        ["handoffs", "num"], ["LLM calls", "num"], ["tokens", "num"], ["cost", "num"],
        ["state"], ["detections", "num"]], rows, { id: "runs-table", class: "clickable" }),
    pager,
  ];
}

function agentGraph(agents, handoffs, flaggedAgents) {
  const names = agents.map((a) => a.name);
  for (const edge of handoffs) {
    for (const name of [edge.source, edge.target]) if (!names.includes(name)) names.push(name);
  }
  if (names.length === 0) return h("p", { class: "muted" }, "No agents in this run.");
  const width = 640;
  const height = names.length <= 2 ? 200 : 360;
  const radius = names.length <= 2 ? 0 : Math.min(width, height) / 2 - 60;
  const at = new Map(names.map((name, i) => {
    if (names.length <= 2) return [name, [width * (i + 1) / (names.length + 1), height / 2]];
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / names.length;
    return [name, [width / 2 + radius * Math.cos(angle) * 1.5, height / 2 + radius * Math.sin(angle)]];
  }));
  const counts = new Map();
  for (const edge of handoffs) {
    if (edge.source === edge.target) continue;
    const key = `${edge.source}\u0000${edge.target}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const byName = new Map(agents.map((a) => [a.name, a]));
  const svg = s("svg", { id: "agent-graph", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "agents and the handoffs between them" },
  s("defs", {}, s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 8, markerHeight: 8, orient: "auto-start-reverse" },
  s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))));
  const nodeRadius = 28;
  for (const [key, count] of counts) {
    const [source, target] = key.split("\u0000");
    const [x1, y1] = at.get(source);
    const [x2, y2] = at.get(target);
    const length = Math.hypot(x2 - x1, y2 - y1) || 1;
    const [ux, uy] = [(x2 - x1) / length, (y2 - y1) / length];
    // bend every edge to its left, so A→B and B→A do not overlap
    const [mx, my] = [(x1 + x2) / 2 - uy * 30, (y1 + y2) / 2 + ux * 30];
    const start = [x1 + ux * nodeRadius, y1 + uy * nodeRadius];
    const end = [x2 - ux * (nodeRadius + 2), y2 - uy * (nodeRadius + 2)];
    svg.append(s("path", { class: "edge", "data-edge": `${source}→${target}`,
      d: `M ${start[0]} ${start[1]} Q ${mx} ${my} ${end[0]} ${end[1]}`, "marker-end": "url(#arrow)" },
    s("title", {}, `${source} → ${target}: ${count} handoff${count === 1 ? "" : "s"}`)));
    svg.append(s("text", { class: "edge-label", x: (start[0] + 2 * mx + end[0]) / 4,
      y: (start[1] + 2 * my + end[1]) / 4 }, `${count}×`));
  }
  for (const name of names) {
    const [x, y] = at.get(name);
    const agent = byName.get(name);
    const flagged = flaggedAgents.has(name);
    svg.append(s("g", { class: `node${flagged ? " flagged" : ""}`, "data-agent": name },
      s("circle", { cx: x, cy: y, r: nodeRadius }),
      s("text", { x, y: y + nodeRadius + 16, class: "node-label" }, name),
      s("text", { x, y: y + 4, class: "node-count" }, agent ? `${agent.invocations}×` : ""),
      s("title", {}, agent
        ? `${name}: ${agent.invocations} invocations, ${agent.llm_calls} LLM calls, ${fmtCost(agent.cost_usd)}`
        : name)));
  }
  return svg;
}

const OPERATION_CLASS = {
  invoke_workflow: "workflow", invoke_agent: "agent", invoke_node: "agent", chat: "llm",
  text_completion: "llm", generate_content: "llm", embeddings: "llm", execute_tool: "tool",
};

function spanLabel(span) {
  const parts = [span.name];
  if (span.model && !span.name.includes(span.model)) parts.push(span.model);
  return parts.join(" · ");
}

function spanDetails(span) {
  const rows = [
    ["span id", span.span_id], ["parent", span.parent_span_id ?? "—"],
    ["kind", span.kind], ["status", span.status_code + (span.status_message ? `: ${span.status_message}` : "")],
    ["service", span.service_name ?? "—"], ["start", fmtTime(span.start_ns)],
    ["duration", fmtDuration(span.end_ns - span.start_ns)],
  ];
  if (span.input_tokens || span.output_tokens) {
    rows.push(["tokens", `${fmtInt(span.input_tokens)} in, ${fmtInt(span.output_tokens)} out`]);
  }
  if (span.cost_usd) rows.push(["cost", fmtCost(span.cost_usd)]);
  const attributes = Object.entries(span.attributes).sort(([a], [b]) => a.localeCompare(b));
  return h("div", { id: "span-details", class: "details" },
    h("h3", {}, span.name),
    h("dl", {}, rows.map(([key, value]) => [h("dt", {}, key), h("dd", {}, value)])),
    attributes.length ? h("h4", {}, "Attributes") : null,
    attributes.length ? table([["key"], ["value"]], attributes.map(([key, value]) =>
      h("tr", {}, h("td", { class: "key" }, key),
        h("td", { class: "value" }, typeof value === "string" ? value : JSON.stringify(value)))),
    { class: "attributes" }) : null,
    span.events.length ? h("h4", {}, "Events") : null,
    span.events.length ? h("ul", {}, span.events.map((e) => h("li", {}, h("code", {}, e.name),
      " +", fmtDuration(e.time_ns - span.start_ns), " ",
      Object.keys(e.attributes).length ? h("span", { class: "muted" }, JSON.stringify(e.attributes)) : null))) : null);
}

function timeline(allSpans, truncated) {
  if (allSpans.length === 0) return h("p", { class: "muted" }, "No spans stored for this run yet.");
  const markers = allSpans.filter((x) => x.marker).length;
  const spans = state.showMarkers ? allSpans : allSpans.filter((x) => !x.marker);
  const start = Math.min(...spans.map((x) => x.start_ns));
  const end = Math.max(...spans.map((x) => x.end_ns));
  const total = Math.max(1, end - start);
  const ids = new Set(spans.map((x) => x.span_id));
  const children = new Map();
  for (const span of spans) {
    const parent = span.parent_span_id && ids.has(span.parent_span_id) ? span.parent_span_id : null;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  const ordered = [];
  const walk = (parent, depth) => {
    for (const span of children.get(parent) ?? []) {
      if (ordered.length >= MAX_TIMELINE_ROWS) return;
      ordered.push([span, depth]);
      walk(span.span_id, depth + 1);
    }
  };
  walk(null, 0);
  const details = h("div", { class: "details-slot" });
  const select = (span, row) => {
    state.selectedSpan = span.span_id;
    for (const other of row.parentElement.children) other.classList.remove("selected");
    row.classList.add("selected");
    details.replaceChildren(spanDetails(span));
  };
  const rows = ordered.map(([span, depth]) => {
    const kind = OPERATION_CLASS[span.operation] ?? "other";
    const bar = h("div", { class: `bar ${kind}${span.status_code === "error" ? " error" : ""}` });
    bar.style.left = `${(100 * (span.start_ns - start)) / total}%`;
    bar.style.width = `${Math.max(0.2, (100 * (span.end_ns - span.start_ns)) / total)}%`;
    const label = h("div", { class: "span-name" }, spanLabel(span));
    label.style.paddingLeft = `${depth * 14}px`;
    const row = h("div", { class: "span-row", "data-span": span.span_id, "data-kind": kind,
      tabindex: 0 },
    label, h("div", { class: "track" }, bar),
    h("div", { class: "span-duration" }, fmtDuration(span.end_ns - span.start_ns)));
    row.addEventListener("click", () => select(span, row));
    row.addEventListener("keydown", (event) => { if (event.key === "Enter") select(span, row); });
    if (span.span_id === state.selectedSpan) {
      row.classList.add("selected");
      details.replaceChildren(spanDetails(span));
    }
    return row;
  });
  const note = truncated || ordered.length < spans.length
    ? h("p", { class: "muted" }, `Showing the first ${fmtInt(ordered.length)} spans.`) : null;
  const toggle = markers ? h("label", { class: "muted markers" },
    h("input", { type: "checkbox", id: "show-markers", checked: state.showMarkers,
      onchange: (event) => { state.showMarkers = event.target.checked; render({ quiet: true }); } }),
    ` show ${fmtInt(markers)} step start marker${markers === 1 ? "" : "s"}`) : null;
  return [toggle, h("div", { id: "timeline", class: "timeline" },
    h("div", { class: "span-row head" }, h("div", { class: "span-name" }, "span"),
      h("div", { class: "track" }, `0 → ${fmtDuration(total)}`), h("div", { class: "span-duration" }, "duration")),
    rows), note, details];
}

async function runView(runId) {
  const path = `/v1/runs/${encodeURIComponent(runId)}`;
  const [{ graph, detections, resumed_by: resumedBy = [] }, { spans, truncated }, { decisions }] =
    await Promise.all([
    api(path), api(`${path}/spans`), api(`${path}/decisions`)]);
  const run = graph.run;
  // the other runs of its conversation (a LangGraph thread, a CrewAI flow's state)
  const thread = run.conversation_id ? (await api(`/v1/runs?${new URLSearchParams({
    conversation: run.conversation_id, limit: String(CONVERSATION_RUNS) })}`)).runs : [];
  state.settled = run.complete;
  // a run that stopped to wait for input says so on its workflow span (the run row carries it,
  // and the spans shown may be a truncated list)
  const paused = run.paused || spans.some((x) => x.attributes["agentmesh.run.paused"] === true);
  const flagged = new Set(detections.map((d) => d.agent).filter(Boolean));
  const agentRows = graph.agents.map((a) => h("tr", { "data-agent": a.name },
    h("td", {}, a.name, flagged.has(a.name) ? [" ", badge("flagged", "bad")] : null),
    h("td", { class: "num" }, fmtInt(a.invocations)),
    h("td", { class: "num" }, fmtInt(a.llm_calls)),
    h("td", { class: "num" }, fmtInt(a.input_tokens)),
    h("td", { class: "num" }, fmtInt(a.output_tokens)),
    h("td", { class: "num" }, fmtCost(a.cost_usd)),
    h("td", { class: "num" }, run.cost_usd ? `${((100 * a.cost_usd) / run.cost_usd).toFixed(0)}%` : "—")));
  const handoffRows = graph.handoffs.map((e) => h("tr", {},
    h("td", { class: "num" }, e.seq),
    h("td", { class: "num" }, "+" + fmtDuration(e.start_ns - run.start_ns)),
    h("td", {}, e.source, " → ", e.target),
    h("td", {}, e.kind),
    h("td", { class: "num" }, e.context_size === null ? "—" : fmtInt(e.context_size)),
    h("td", { title: e.checkpoint_id ?? "" }, e.checkpoint_id ? short(e.checkpoint_id, 16) : "—")));
  const detectionItems = detections.map((d) => h("li", { class: `detection ${d.severity}`,
    "data-type": d.type },
  severityBadge(d.severity), " ",
  h("strong", {}, d.type), d.agent ? h("span", { class: "muted" }, ` · ${d.agent}`) : null,
  h("div", {}, d.explanation),
  h("div", { class: "muted" }, fmtTime(d.detected_at_ns))));
  return [
    h("div", { class: "toolbar" }, h("a", { href: "#/" }, "← runs"), h("span", { class: "spacer" })),
    h("h1", { id: "run-title" }, run.run_id, " ",
      paused ? badge("paused", "warn") : badge(runState(run), STATE_TONES[runState(run)])),
    h("p", { class: "muted" }, [run.workflow_name, run.service_name].filter(Boolean).join(" · "),
      " · trace ", h("code", {}, run.trace_id), " · started ", fmtTime(run.start_ns)),
    resumedFrom(run, spans),
    paused ? h("p", { id: "paused" }, "Paused: the run stopped to wait for input (human feedback or ",
      "an interrupt), it did not fail.", resumedBy.length ? null
        : " The run that resumes it will be linked here.") : null,
    run.error ? h("p", { id: "failed" }, h("strong", {}, "Failed: "), run.error,
      resumedBy.length ? " A later run continues it." : null) : null,
    !run.error && run.interrupted ? h("p", { id: "interrupted" }, h("strong", {}, "Interrupted: "),
      run.interrupted, ": the run was stopped before it finished (it did not fail).",
      resumedBy.length ? " A later run continues it." : null) : null,
    resumedByNote(resumedBy),
    conversationNote(run, thread),
    h("div", { class: "cards" },
      card("duration", fmtDuration(run.end_ns - run.start_ns)),
      card("spans", fmtInt(run.span_count)),
      card("handoffs", fmtInt(run.handoffs)),
      card("LLM calls", fmtInt(run.llm_calls)),
      card("tokens", fmtInt(run.input_tokens + run.output_tokens),
        `${fmtInt(run.input_tokens)} in · ${fmtInt(run.output_tokens)} out`),
      card("cost", fmtCost(run.cost_usd)),
      card("detections", fmtInt(detections.length))),
    detections.length ? section("Detections", "detections", h("ul", { class: "detections" }, detectionItems)) : null,
    section("Agents and handoffs", "graph", h("div", { class: "split" },
      h("div", { class: "graph" }, agentGraph(graph.agents, graph.handoffs, flagged)),
      table([["agent"], ["invocations", "num"], ["LLM calls", "num"], ["input tokens", "num"],
        ["output tokens", "num"], ["cost", "num"], ["share", "num"]], agentRows, { id: "agents-table" }))),
    graph.handoffs.length ? section("Handoffs", "handoffs", table([["#", "num"], ["at", "num"],
      ["from → to"], ["kind"], ["context bytes", "num"], ["checkpoint"]], handoffRows, { id: "handoffs-table" })) : null,
    decisions.length ? section("Routing decisions", "run-decisions",
      decisionsTable(decisions, { withRun: false })) : null,
    section("Timeline", "spans", timeline(spans, truncated)),
  ];
}

function resumedFrom(run, spans) {
  // a run that continues another (`agentmesh resume`, a CrewAI flow resumed after human
  // feedback) says which on its spans; the run row carries it too (the spans may be truncated)
  const span = spans.find((x) => typeof x.attributes["agentmesh.resume.from_run_id"] === "string");
  const from = run.resumed_from ?? span?.attributes["agentmesh.resume.from_run_id"];
  if (!from) return null;
  const checkpoint = span?.attributes["agentmesh.resume.checkpoint_id"];
  return h("p", { id: "resumed-from" }, "Continues run ",
    h("a", { href: `#/runs/${encodeURIComponent(from)}` }, from),
    typeof checkpoint === "string" ? [" from checkpoint ", h("code", {}, short(checkpoint, 16))] : null,
    ".");
}

const CONVERSATION_RUNS = 20;

function conversationNote(run, runs) {
  // the runs of the run's conversation, oldest first (the latest CONVERSATION_RUNS of them)
  if (!run.conversation_id) return null;
  const ordered = runs.slice().reverse();
  const links = ordered.flatMap((r, i) => [i ? " → " : "",
    r.run_id === run.run_id ? h("strong", {}, r.run_id)
      : h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}` }, r.run_id),
    " ", badge(runState(r), STATE_TONES[runState(r)])]);
  return h("p", { id: "conversation" }, "Conversation ", h("code", {}, run.conversation_id),
    runs.length > 1 ? [`: ${runs.length === CONVERSATION_RUNS ? "the latest " : ""}`
      + `${runs.length} runs, oldest first: `, ...links] : " (this run only)", ".");
}

function resumedByNote(runs) {
  // the runs that continue this one (after a pause, a failure or a stop), latest first
  if (!runs.length) return null;
  const links = runs.flatMap((r, i) => [i ? ", " : "",
    h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}` }, r.run_id), " ",
    badge(runState(r), STATE_TONES[runState(r)])]);
  return h("p", { id: "resumed-by" }, runs.length === 1 ? "Resumed by run " : "Resumed by runs ",
    ...links, ".");
}

function severityBadge(severity) {
  return badge(severity, severity === "critical" || severity === "error" ? "bad"
    : severity === "warning" ? "warn" : "info");
}

async function detectionsView() {
  // one type is asked of the server: the newest page of that type, not its share of a page
  const query = new URLSearchParams({ limit: String(DETECTIONS_PAGE) });
  if (state.since) query.set("since", state.since);
  if (state.detectionType) query.set("type", state.detectionType);
  const before = state.detectionsBefore.at(-1);
  if (before) query.set("before", before);
  const { detections, next_before: next } = await api(`/v1/detections?${query}`);
  for (const d of detections) state.detectionTypes.add(d.type);
  const types = [...state.detectionTypes].sort();
  const pager = h("div", { class: "pager" },
    state.detectionsBefore.length ? h("button", { type: "button", id: "newer", onclick: () => {
      state.detectionsBefore.pop();
      render();
    } }, "← newer") : null,
    next ? h("button", { type: "button", id: "older", onclick: () => {
      state.detectionsBefore.push(next);
      render();
    } }, "older →") : null);
  const typeSelect = h("select", { id: "detection-type", "aria-label": "detection type",
    onchange: (event) => {
      state.detectionType = event.target.value;
      state.detectionsBefore = [];
      render();
    } },
  h("option", { value: "" }, "every type"),
  [...new Set([...types, state.detectionType].filter(Boolean))].map((type) =>
    h("option", { value: type, selected: type === state.detectionType }, type)));
  const byType = new Map();
  for (const d of detections) byType.set(d.type, (byType.get(d.type) ?? 0) + 1);
  const rows = detections.map((d) => h("tr", { class: "detection-row", "data-type": d.type },
    h("td", { title: fmtTime(d.detected_at_ns) }, fmtAgo(d.detected_at_ns)),
    h("td", {}, severityBadge(d.severity)),
    h("td", {}, d.type),
    h("td", {}, d.run_id
      ? h("a", { href: `#/runs/${encodeURIComponent(d.run_id)}` }, d.run_id) : short(d.trace_id, 16)),
    h("td", {}, d.agent ?? "—"),
    h("td", {}, d.explanation)));
  return [
    h("div", { class: "toolbar" }, h("h1", {}, "Detections"), h("span", { class: "spacer" }),
      typeSelect, sinceSelect(render)),
    h("div", { class: "cards" }, card("detections", fmtInt(detections.length),
      state.detectionsBefore.length ? `page ${state.detectionsBefore.length + 1}`
        : next ? `the newest ${fmtInt(DETECTIONS_PAGE)}` : null),
    [...byType].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([type, count]) => card(type, fmtInt(count)))),
    detections.length === 0 ? h("p", { class: "empty" }, "No detection in this range.")
      : table([["when"], ["severity"], ["type"], ["run"], ["agent"], ["explanation"]], rows,
        { id: "detections-table" }),
    pager,
  ];
}

async function costsView() {
  const query = new URLSearchParams({ group_by: state.costsBy });
  if (state.since) query.set("since", state.since);
  const { costs } = await api(`/v1/costs?${query}`);
  const total = costs.reduce((sum, c) => sum + c.cost_usd, 0);
  const toggle = h("div", { class: "toggle", role: "group", "aria-label": "group by" },
    ["agent", "model"].map((by) => h("button", { type: "button", "data-by": by,
      class: by === state.costsBy ? "active" : "", onclick: () => {
        state.costsBy = by;
        localStorage.setItem("agentmesh.costsBy", by);
        render();
      } }, `by ${by}`)));
  const rows = costs.map((c) => {
    const bar = h("div", { class: "share-bar" });
    bar.style.width = `${total ? (100 * c.cost_usd) / total : 0}%`;
    const unnamed = state.costsBy === "agent" ? "(outside any agent)" : "(not recorded)";
    return h("tr", {}, h("td", {}, c.key ?? unnamed),
      h("td", { class: "num" }, fmtInt(c.llm_calls)),
      h("td", { class: "num" }, fmtInt(c.input_tokens)),
      h("td", { class: "num" }, fmtInt(c.output_tokens)),
      h("td", { class: "num" }, fmtCost(c.cost_usd)),
      h("td", { class: "share" }, bar));
  });
  return [
    h("div", { class: "toolbar" }, h("h1", {}, "Costs"), h("span", { class: "spacer" }), toggle,
      sinceSelect(render)),
    h("div", { class: "cards" }, card("total", fmtCost(total)),
      card("LLM calls", fmtInt(costs.reduce((sum, c) => sum + c.llm_calls, 0)))),
    costs.length === 0 ? h("p", { class: "empty" }, "No LLM calls in this range.")
      : table([[state.costsBy], ["LLM calls", "num"], ["input tokens", "num"],
        ["output tokens", "num"], ["cost", "num"], ["share"]], rows, { id: "costs-table" }),
  ];
}

function fmtSeconds(seconds) {
  return seconds === null || seconds === undefined ? "—" : fmtDuration(seconds * 1e9);
}

async function routingView() {
  const rt = await api("/v1/route-table", { conditional: true });
  const decisions = await decisionsSection([...Object.keys(rt.modes), ...Object.keys(rt.tradeoffs)]);
  const now = Date.now() / 1000;
  const open = Object.entries(rt.breakers).filter(([, until]) => until > now);
  const unseen = { calls: 0, errors: 0, latency_p50_s: null, latency_p95_s: null,
    cost_mean_usd: null, quality_mean: null }; // a model with an open breaker but no outcome
  const models = [...new Set([...Object.keys(rt.models), ...Object.keys(rt.breakers)])]
    .map((name) => [name, rt.models[name] ?? unseen]).sort((a, b) => b[1].calls - a[1].calls);
  const modes = Object.entries(rt.modes).sort(([a], [b]) => a.localeCompare(b));
  const tradeoffs = Object.entries(rt.tradeoffs).sort(([a], [b]) => a.localeCompare(b));
  const modelRows = models.map(([name, m]) => {
    const until = rt.breakers[name];
    return h("tr", { "data-model": name }, h("td", {}, name),
      h("td", { class: "num" }, fmtInt(m.calls)),
      h("td", { class: "num" }, m.calls ? `${((100 * m.errors) / m.calls).toFixed(1)}%` : "—"),
      h("td", { class: "num" }, fmtSeconds(m.latency_p50_s)),
      h("td", { class: "num" }, fmtSeconds(m.latency_p95_s)),
      h("td", { class: "num" }, m.cost_mean_usd === null ? "—" : fmtCost(m.cost_mean_usd)),
      h("td", { class: "num" }, m.quality_mean === null ? "—" : m.quality_mean.toFixed(2)),
      h("td", {}, until > now
        ? [badge("open", "bad"), ` until ${new Date(until * 1000).toLocaleTimeString()}`]
        : badge("closed", "ok")));
  });
  return [
    h("div", { class: "toolbar" }, h("h1", {}, "Routing"), h("span", { class: "spacer" })),
    h("p", { class: "muted" }, "The route table this collector publishes; apps follow it and "
      + "fall back to their last copy, then to their bundled defaults."),
    h("div", { class: "cards" },
      card("version", fmtInt(rt.version), rt.generated_at
        ? `published ${fmtAgo(rt.generated_at * 1e9)}` : "defaults, never published"),
      card("models observed", fmtInt(models.length)),
      card("breakers open", fmtInt(open.length)),
      card("learned predictor", rt.predictor ? "yes" : "no")),
    section("Modes by task class", "modes", modes.length || rt.default_mode
      ? table([["task class"], ["mode"]], [
        ...modes.map(([task, mode]) => h("tr", {}, h("td", {}, task === "*" ? "every other" : task),
          h("td", {}, mode))),
        rt.default_mode ? h("tr", {}, h("td", {}, "every other"), h("td", {}, rt.default_mode)) : null,
      ], { id: "modes-table" })
      : h("p", { class: "muted" }, "None set: each app keeps its AGENTMESH_ROUTING_MODE.")),
    tradeoffs.length ? section("Trade-offs", "tradeoffs", table([["task class"],
      ["cost weight (per USD)", "num"], ["latency weight (per s)", "num"]], tradeoffs.map(([task, t]) =>
      h("tr", {}, h("td", {}, task === "*" ? "every other" : task),
        h("td", { class: "num" }, t.cost_weight), h("td", { class: "num" }, t.latency_weight))))) : null,
    section("Models", "models", models.length === 0
      ? h("p", { class: "empty" }, "No routed call has reached this collector yet.")
      : table([["model"], ["calls", "num"], ["errors", "num"], ["latency p50", "num"],
        ["latency p95", "num"], ["mean cost", "num"], ["quality", "num"], ["breaker"]], modelRows,
      { id: "models-table" })),
    decisions,
  ];
}

function outcomeBadge(d) {
  if (d.error) return badge(d.error_type ?? "error", "bad");
  if (d.fallbacks.length) return badge(`after ${d.fallbacks.length} fallback${d.fallbacks.length === 1 ? "" : "s"}`, "warn");
  return badge("ok", "ok");
}

function decisionDetails(d) {
  const best = Math.max(...d.scores.filter((x) => x !== null), 0);
  const candidates = d.candidates.map((name, i) => {
    const score = d.scores[i] ?? null;
    const bar = h("div", { class: "share-bar" });
    bar.style.width = `${best > 0 && score > 0 ? (100 * score) / best : 0}%`;
    return h("tr", { class: name === d.chosen ? "chosen" : "" },
      h("td", {}, name, name === d.chosen ? [" ", badge("chosen", "ok")] : null,
        d.fallbacks.includes(name) ? [" ", badge("failed", "bad")] : null),
      h("td", { class: "num" }, score === null ? "—" : score.toFixed(4)),
      h("td", { class: "share" }, bar));
  });
  const features = Object.entries(d.features).sort(([a], [b]) => a.localeCompare(b));
  const rows = [
    ["decision", d.decision_id], ["policy", d.policy ?? "—"], ["mode", d.mode ?? "—"],
    ["reason", d.reason ?? "—"], ["asked for", d.requested_model ?? "—"],
    ["answered by", [d.model ?? "—", d.provider ? ` (${d.provider})` : ""].join("")],
    ["fallbacks", d.fallbacks.length ? d.fallbacks.join(" → ") + " → " + (d.model ?? "?") : "none"],
    ["tokens", d.input_tokens === null && d.output_tokens === null ? "—"
      : `${fmtInt(d.input_tokens)} in, ${fmtInt(d.output_tokens)} out`],
    ["detections in the run", d.detections.length ? d.detections.join(", ") : "none"],
    ["feedback", d.feedback_score === null ? "none" : d.feedback_score.toFixed(2)],
    ["route table", d.table_version === null ? "—" : `version ${d.table_version}`],
  ];
  return h("div", { class: "details decision-details" },
    h("dl", {}, rows.map(([key, value]) => [h("dt", {}, key), h("dd", {}, value)])),
    candidates.length ? h("h4", {}, "Candidates") : null,
    candidates.length ? table([["model"], ["score", "num"], [""]], candidates,
      { class: "candidates" }) : null,
    features.length ? h("h4", {}, "Features") : null,
    features.length ? table([["feature"], ["value"]], features.map(([key, value]) =>
      h("tr", {}, h("td", { class: "key" }, key),
        h("td", { class: "value" }, typeof value === "string" ? value : JSON.stringify(value)))),
    { class: "attributes" }) : null);
}

function decisionsTable(decisions, { withRun }) {
  const columns = [["when"], ["task class"], ["mode"], ["asked for"], ["chosen"], ["outcome"],
    ["latency", "num"], ["cost", "num"], ["quality", "num"]];
  if (withRun) columns.push(["run"]);
  const rows = decisions.flatMap((d) => {
    const open = state.openDecision === d.decision_id;
    const toggle = () => {
      state.openDecision = open ? null : d.decision_id;
      render({ quiet: true });
    };
    const row = h("tr", { class: `decision-row${open ? " selected" : ""}`, tabindex: 0,
      "data-decision": d.decision_id, onclick: toggle,
      onkeydown: (event) => { if (event.key === "Enter") toggle(); } },
    h("td", { title: fmtTime(d.start_time * 1e9) }, fmtAgo(d.start_time * 1e9)),
    h("td", {}, d.task_class ?? "—"),
    h("td", {}, d.mode ?? "—"),
    h("td", {}, d.requested_model ?? "—"),
    h("td", {}, d.chosen ?? "—", d.model && d.chosen && d.model !== d.chosen && !d.model.startsWith(d.chosen)
      ? h("span", { class: "muted" }, ` → ${d.model}`) : null),
    h("td", {}, outcomeBadge(d)),
    h("td", { class: "num" }, fmtSeconds(d.latency_s)),
    h("td", { class: "num" }, d.cost_usd === null ? "—" : fmtCost(d.cost_usd)),
    h("td", { class: "num" }, d.quality.toFixed(2)),
    withRun ? h("td", {}, d.run_id ? h("a", { href: `#/runs/${encodeURIComponent(d.run_id)}`,
      onclick: (event) => event.stopPropagation() }, d.run_id) : short(d.trace_id, 16)) : null);
    if (!open) return [row];
    return [row, h("tr", { class: "decision-open" },
      h("td", { colspan: columns.length }, decisionDetails(d)))];
  });
  return table(columns, rows, { id: "decisions-table", class: "clickable" });
}

async function decisionsSection(taskClasses) {
  const query = new URLSearchParams({ limit: "100" });
  if (state.since) query.set("since", state.since);
  if (state.decisionTask) query.set("task_class", state.decisionTask);
  const { decisions } = await api(`/v1/decisions?${query}`);
  const tasks = [...new Set([...taskClasses, ...decisions.map((d) => d.task_class),
    state.decisionTask].filter((t) => t && t !== "*"))].sort();
  const taskSelect = h("select", { id: "decision-task", "aria-label": "task class",
    onchange: (event) => { state.decisionTask = event.target.value; render(); } },
  h("option", { value: "" }, "every task class"),
  tasks.map((task) => h("option", { value: task, selected: task === state.decisionTask }, task)));
  const failed = decisions.filter((d) => d.error).length;
  const fellBack = decisions.filter((d) => !d.error && d.fallbacks.length).length;
  return section("Decisions", "decisions",
    h("div", { class: "toolbar" }, h("span", { class: "muted" }, decisions.length === 100
      ? "The newest 100 decisions" : `${fmtInt(decisions.length)} decisions`,
    failed || fellBack ? `: ${fmtInt(failed)} failed, ${fmtInt(fellBack)} answered after a fallback` : "",
    ". Click one for its candidates, scores and features."),
    h("span", { class: "spacer" }), taskSelect, sinceSelect(render)),
    decisions.length === 0
      ? h("p", { class: "empty" }, "No routing decision in this range.")
      : decisionsTable(decisions, { withRun: true }));
}

// ---- routing and refresh --------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const run = hash.match(/^\/runs\/(.+)$/);
  if (run) return { view: "run", load: () => runView(decodeURIComponent(run[1])) };
  if (hash === "/costs") return { view: "costs", load: costsView };
  if (hash === "/detections") return { view: "detections", load: detectionsView };
  if (hash === "/routing") return { view: "routing", load: routingView };
  return { view: "runs", load: runsView };
}

async function render({ quiet = false } = {}) {
  const id = ++state.renderId;
  const { view, load } = route();
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === (view === "run" ? "runs" : view));
  }
  const app = document.getElementById("app");
  try {
    const content = await load();
    if (id !== state.renderId) return; // a newer render started meanwhile
    const scroll = window.scrollY;
    const focused = document.activeElement?.id ? document.activeElement : null;
    const caret = focused?.selectionStart ?? null;
    app.replaceChildren(...[content].flat().filter(Boolean));
    if (quiet) window.scrollTo(0, scroll);
    const again = focused && document.getElementById(focused.id);
    if (again && again !== focused) { // a refresh must not take the keyboard from the user
      again.focus();
      if (caret !== null && again.setSelectionRange) again.setSelectionRange(caret, caret);
    }
    showError(null);
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (id !== state.renderId) return;
    if (error instanceof AuthError) {
      sessionStorage.removeItem(TOKEN_KEY);
      app.replaceChildren(tokenForm(error.message));
      showError(null);
    } else if (quiet) {
      showError(`Could not refresh: ${error.message}`);
    } else {
      app.replaceChildren(h("p", { class: "empty" }, error.message));
      showError(null);
    }
  }
}

function schedule() {
  clearInterval(state.timer);
  const live = document.getElementById("auto-refresh");
  if (!live.checked) return;
  state.timer = setInterval(() => {
    if (document.hidden || document.getElementById("token-form")) return;
    // a finished run changes only with late spans: refreshed every sixth tick (30 s)
    state.ticks += 1;
    if (route().view === "run" && state.settled && state.ticks % 6 !== 0) return;
    render({ quiet: true });
  }, REFRESH_MS);
}

window.addEventListener("hashchange", () => {
  state.selectedSpan = null;
  state.openDecision = null;
  state.settled = false;
  render();
});
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("auto-refresh");
  live.checked = localStorage.getItem("agentmesh.live") !== "off";
  live.addEventListener("change", () => {
    localStorage.setItem("agentmesh.live", live.checked ? "on" : "off");
    schedule();
  });
  render();
  schedule();
});
