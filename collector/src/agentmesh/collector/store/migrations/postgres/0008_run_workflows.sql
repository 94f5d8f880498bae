-- The runs of one workflow by start, so `GET /v1/runs?workflow=` and `agentmesh runs --workflow`
-- page through a workflow's runs without reading every run (the dashboards count failures by
-- workflow; this lists them). Additive: an index only.

CREATE INDEX IF NOT EXISTS runs_workflow ON runs (workflow_name, start_ns DESC);
