-- Chunk embeddings for the local hybrid retriever (full-text + pgvector), only where the server can have
-- them. The same file applies everywhere:
--   * a server without the `vector` extension (a plain Postgres 15, Azure Database for PostgreSQL while
--     `vector` is not allow-listed in the `azure.extensions` server parameter) gets nothing, and the app
--     keeps plain full-text search;
--   * a server with it (the embedded pgserver, Postgres 16 + pgvector) gets the extension and two columns:
--     the embedding and the model that made it. The app finds the column at run time.
-- The type is resolved only when the statements run (EXECUTE), so the block parses on both.
--
-- The column has no fixed dimension: the dimension belongs to the configured embeddings model, which a
-- setting can change after this migration has run. Vectors are compared only with vectors of the same
-- model (`embedding_model`) and dimension, and a model change re-embeds the chunks. HNSW and IVFFlat
-- indexes need a fixed dimension, so there is none: the nearest-neighbour query is a sequential scan
-- over one agent's chunks (found through the agent index), which is fast at the sizes one agent's
-- knowledge has (thousands of chunks). A deployment with far more would add an expression index on
-- `(embedding::vector(<dims>))` for its model.
--
-- On Azure, allow-listing `vector` after this migration has run does not re-run it; Azure deployments
-- retrieve through Azure AI Search, which keeps its own vectors.

DO $$
DECLARE
    allowed text := current_setting('azure.extensions', true);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
        RAISE NOTICE 'pgvector is not available on this server: knowledge retrieval stays full-text';
        RETURN;
    END IF;
    IF allowed IS NOT NULL AND NOT 'vector' = ANY (string_to_array(lower(replace(allowed, ' ', '')), ',')) THEN
        RAISE NOTICE 'vector is not allow-listed in azure.extensions: knowledge retrieval stays full-text';
        RETURN;
    END IF;
    EXECUTE 'CREATE EXTENSION IF NOT EXISTS vector';
    EXECUTE 'ALTER TABLE knowledge_chunks ADD COLUMN IF NOT EXISTS embedding vector, '
            'ADD COLUMN IF NOT EXISTS embedding_model text';
END
$$;
