-- Why a run failed (its root span ended in error: the step it left through and the error type)
-- and what interrupted it (its root span was stopped without failing: Ctrl-C, a cancelled task),
-- so run lists tell failed and interrupted runs from complete ones; and the failed runs by
-- start, so `state=failed` is listed without reading every run. Additive: nullable columns (the
-- runs stored before did not fail, as far as the store knew), so a collector still on migration
-- 0006 keeps working beside it.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS error TEXT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS interrupted TEXT;
CREATE INDEX IF NOT EXISTS runs_failed ON runs (start_ns) WHERE error IS NOT NULL;
