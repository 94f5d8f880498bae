-- Why a run failed (its root span ended in error: the step it left through and the error type),
-- so run lists tell a failed run from a complete one; and the failed runs by start, so
-- `state=failed` is listed without reading every run. Additive: a nullable column (the runs
-- stored before did not fail, as far as the store knew), so a collector still on migration
-- 0006 keeps working beside it.

ALTER TABLE runs ADD COLUMN IF NOT EXISTS error TEXT;
CREATE INDEX IF NOT EXISTS runs_failed ON runs (start_ns) WHERE error IS NOT NULL;
