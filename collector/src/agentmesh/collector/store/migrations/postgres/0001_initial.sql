-- The collector's tables, the same logical schema as the DuckDB store (version 2).
-- Attributes, events and resource attributes are JSON text (exactly what was received);
-- model, tokens and cost of LLM calls are columns so costs by model are a plain GROUP BY.

CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    status_code TEXT NOT NULL,
    status_message TEXT NOT NULL,
    operation TEXT,
    run_id TEXT,
    service_name TEXT,
    scope_name TEXT NOT NULL,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL,
    resource TEXT NOT NULL,
    model TEXT,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    PRIMARY KEY (trace_id, span_id)
);

CREATE TABLE IF NOT EXISTS runs (
    trace_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    workflow_name TEXT,
    service_name TEXT,
    framework TEXT,
    start_ns BIGINT NOT NULL,
    end_ns BIGINT NOT NULL,
    span_count INTEGER NOT NULL,
    llm_calls INTEGER NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    complete BOOLEAN NOT NULL
);

CREATE TABLE IF NOT EXISTS agents (
    trace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    invocations INTEGER NOT NULL,
    span_ids TEXT[] NOT NULL,
    llm_calls INTEGER NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (trace_id, name)
);

CREATE TABLE IF NOT EXISTS handoffs (
    trace_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    span_id TEXT NOT NULL,
    start_ns BIGINT NOT NULL,
    kind TEXT NOT NULL,
    context_digest TEXT,
    context_size BIGINT,
    PRIMARY KEY (trace_id, seq)
);

CREATE TABLE IF NOT EXISTS detections (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    agent TEXT,
    span_ids TEXT[] NOT NULL,
    explanation TEXT NOT NULL,
    detected_at_ns BIGINT NOT NULL,
    details TEXT NOT NULL
);
