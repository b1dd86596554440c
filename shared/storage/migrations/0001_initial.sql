-- Agents, their knowledge, conversations and every turn.

CREATE TABLE agents (
    name          text PRIMARY KEY,
    profile       jsonb NOT NULL,
    content_hash  text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE knowledge_chunks (
    id        bigserial PRIMARY KEY,
    agent     text NOT NULL REFERENCES agents (name) ON DELETE CASCADE,
    title     text NOT NULL,
    body      text NOT NULL,
    search    tsvector GENERATED ALWAYS AS (
                  setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')
              ) STORED
);
CREATE INDEX knowledge_chunks_search ON knowledge_chunks USING gin (search);
CREATE INDEX knowledge_chunks_agent ON knowledge_chunks (agent);

CREATE TABLE conversations (
    id          uuid PRIMARY KEY,
    agent       text NOT NULL REFERENCES agents (name),
    language    text NOT NULL,
    channel     text NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ending', 'completed')),
    outcome     text,
    summary     text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz
);

CREATE TABLE turns (
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    turn             integer NOT NULL CHECK (turn >= 0),
    kind             text NOT NULL,
    request_id       text,
    user_text        text,
    intent           text,
    reply_text       text NOT NULL,
    audio_blob       text,
    stt_ms           double precision,
    agent_ms         double precision,
    tts_ms           double precision,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, turn),
    UNIQUE (conversation_id, request_id)
);
