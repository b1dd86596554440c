-- Knowledge documents: every source of an agent's knowledge (an entry of its agent file, a file the
-- agent file names, or a file ingested with `python -m shared.knowledge`); each chunk belongs to one.

CREATE TABLE knowledge_documents (
    agent         text NOT NULL REFERENCES agents (name) ON DELETE CASCADE,
    document_id   text NOT NULL CHECK (document_id ~ '^[a-z0-9][a-z0-9-]{0,119}$'),
    title         text NOT NULL,
    source        text NOT NULL,
    origin        text NOT NULL CHECK (origin IN ('inline', 'file', 'ingest')),
    content_type  text NOT NULL,
    blob_name     text,
    content_hash  text NOT NULL,
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    indexed_hash  text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, document_id)
);

-- Chunks stored before documents existed all came from agent files: drop them and make every agent
-- file sync again on the next start (its stored hash no longer matches).
DELETE FROM knowledge_chunks;
UPDATE agents SET content_hash = '';

ALTER TABLE knowledge_chunks
    ADD COLUMN document_id  text NOT NULL,
    ADD COLUMN chunk_id     text NOT NULL UNIQUE,
    ADD COLUMN position     integer NOT NULL CHECK (position >= 0),
    ADD FOREIGN KEY (agent, document_id) REFERENCES knowledge_documents (agent, document_id) ON DELETE CASCADE;
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (agent, document_id, position);
