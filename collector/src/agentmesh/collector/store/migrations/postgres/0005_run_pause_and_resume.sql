-- Whether a run stopped to wait for input (agentmesh.run.paused: a LangGraph interrupt, CrewAI
-- human feedback), so run lists can tell a paused run from a finished one, and the run a resumed
-- run continues (agentmesh.resume.from_run_id), so a paused or failed run can link to the runs
-- that resumed it (through the index). Additive: columns with a default or nullable, so a
-- collector still on migration 0004 keeps working beside it.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS paused BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS resumed_from TEXT;
CREATE INDEX IF NOT EXISTS runs_resumed_from ON runs (resumed_from)
    WHERE resumed_from IS NOT NULL;
