-- How long a phone call lasted, as its provider reported it when the call ended (null for other channels).
-- conversations is already tenant-scoped (0011: row-level security) and vao_app may already UPDATE it,
-- so the new column needs no grant or policy of its own.

ALTER TABLE conversations ADD COLUMN call_duration_seconds integer CHECK (call_duration_seconds >= 0);
