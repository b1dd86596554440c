-- The knowledge chunks each reply was answered from (chunk, document, title, source).

ALTER TABLE turns ADD COLUMN citations jsonb NOT NULL DEFAULT '[]'::jsonb;
