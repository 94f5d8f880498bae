-- The conversation a run belongs to (gen_ai.conversation.id: a LangGraph thread, a CrewAI flow's
-- state) and whether the run continues it (agentmesh.run.resumed), so a run resumed in another
-- process than the one that saw its conversation pause is linked to the conversation's previous
-- run (through the index: the latest run of a conversation before a time); and the paused runs
-- by start, so the runs waiting for input are listed without reading every run. Additive: a
-- nullable column and one with a default, so a collector still on migration 0005 keeps working
-- beside it.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS conversation_id TEXT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS resumed BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX IF NOT EXISTS runs_conversation ON runs (conversation_id, start_ns)
    WHERE conversation_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_paused ON runs (start_ns) WHERE paused;
