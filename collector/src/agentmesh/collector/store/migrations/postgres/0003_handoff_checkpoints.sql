-- The checkpoint taken at each handoff (where a failed run can resume). Additive: a nullable
-- column, so a collector still on migration 0002 keeps working beside it.

ALTER TABLE handoffs ADD COLUMN IF NOT EXISTS checkpoint_id TEXT;
