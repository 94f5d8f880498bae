-- Whether a run stopped to wait for input (agentmesh.run.paused: a LangGraph interrupt, CrewAI
-- human feedback), so run lists can tell a paused run from a finished one. Additive: a column
-- with a default, so a collector still on migration 0004 keeps working beside it.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS paused BOOLEAN NOT NULL DEFAULT false;
