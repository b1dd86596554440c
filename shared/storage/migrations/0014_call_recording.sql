-- A phone call's recording, when its agent records calls: the blob that holds it and how long it is.
-- conversations is already tenant-scoped (0011: row-level security) and vao_app may already UPDATE it,
-- so the new columns need no grant or policy of their own.

ALTER TABLE conversations ADD COLUMN recording_blob text;
ALTER TABLE conversations ADD COLUMN recording_seconds integer CHECK (recording_seconds >= 0);
