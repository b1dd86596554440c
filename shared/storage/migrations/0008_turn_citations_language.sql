-- The knowledge chunks each reply was answered from (chunk, document, title, source), and the language
-- the reply was written and spoken in (the caller's, for agents that detect it).

ALTER TABLE turns
    ADD COLUMN citations  jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN language   text;
