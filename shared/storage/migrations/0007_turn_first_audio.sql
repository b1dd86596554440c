-- How long the caller waited for the first audio of each reply (null for turns no channel waited on).

ALTER TABLE turns ADD COLUMN first_audio_ms double precision CHECK (first_audio_ms >= 0);
