-- Indexes for the dashboard's queries: runs by start time, detections by trace, chat spans
-- by model. Additive only: a collector still on migration 0001 keeps working beside them.

CREATE INDEX IF NOT EXISTS runs_start_ns ON runs (start_ns);
CREATE INDEX IF NOT EXISTS detections_trace ON detections (trace_id, detected_at_ns);
CREATE INDEX IF NOT EXISTS spans_chat_model ON spans (trace_id, model) WHERE operation = 'chat';
