-- Which engine heard each spoken turn and which spoke each reply (null before this migration, and
-- stt_engine null for typed turns).

ALTER TABLE turns
    ADD COLUMN stt_engine  text,
    ADD COLUMN tts_engine  text;
