-- Runs found by the start of their run id (in any case) or trace id, as `agentmesh graph`,
-- the run API and the dashboard's run page look them up: prefix searches (LIKE 'abc%') use
-- these indexes instead of reading every run. Additive: a collector still on migration 0003
-- keeps working beside it.

CREATE INDEX IF NOT EXISTS runs_run_id_prefix ON runs (lower(run_id) text_pattern_ops);
CREATE INDEX IF NOT EXISTS runs_trace_id_prefix ON runs (trace_id text_pattern_ops);
