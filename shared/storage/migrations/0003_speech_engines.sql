-- Which engine heard each spoken turn and which spoke each reply (null before this migration, and
-- stt_engine null for typed turns). `heard_audio` keeps what `transcribe` learnt about an uploaded
-- utterance until `synthesize` copies it onto the turn the utterance became.

ALTER TABLE turns
    ADD COLUMN stt_engine  text,
    ADD COLUMN tts_engine  text;

CREATE TABLE heard_audio (
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    audio_blob       text NOT NULL,
    stt_engine       text NOT NULL,
    language         text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, audio_blob)
);
