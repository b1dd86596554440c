-- Every row belongs to a tenant, and Postgres row-level security keeps each tenant to its own rows.
--
-- The app never works as the login that owns the tables: each of its transactions switches to the role
-- `vao_app` (NOLOGIN, no superuser, no BYPASSRLS) and sets `app.tenant`, both transaction-local
-- (`shared/storage/postgres.py`). The policies compare `tenant_id` with that setting; no setting, no
-- rows, and an insert without a tenant is refused (the column's default is then NULL). FORCE binds the
-- owner too, so only a superuser (or a BYPASSRLS role) sees every tenant.
--
-- Rows stored before this migration belong to the demo tenant.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vao_app') THEN
        CREATE ROLE vao_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
EXCEPTION
    -- Another database's migration on the same server created it at the same moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;
GRANT vao_app TO CURRENT_USER;

-- The tenant of every row: backfilled to demo, then taken from the transaction's `app.tenant`.
ALTER TABLE agents ADD COLUMN tenant_id text NOT NULL DEFAULT 'demo' REFERENCES tenants (id);
ALTER TABLE knowledge_documents ADD COLUMN tenant_id text NOT NULL DEFAULT 'demo' REFERENCES tenants (id);
ALTER TABLE knowledge_chunks ADD COLUMN tenant_id text NOT NULL DEFAULT 'demo' REFERENCES tenants (id);
ALTER TABLE conversations ADD COLUMN tenant_id text NOT NULL DEFAULT 'demo' REFERENCES tenants (id);
ALTER TABLE turns ADD COLUMN tenant_id text NOT NULL DEFAULT 'demo' REFERENCES tenants (id);
ALTER TABLE callbacks ADD COLUMN tenant_id text NOT NULL DEFAULT 'demo' REFERENCES tenants (id);

ALTER TABLE agents ALTER COLUMN tenant_id SET DEFAULT NULLIF(current_setting('app.tenant', true), '');
ALTER TABLE knowledge_documents ALTER COLUMN tenant_id SET DEFAULT NULLIF(current_setting('app.tenant', true), '');
ALTER TABLE knowledge_chunks ALTER COLUMN tenant_id SET DEFAULT NULLIF(current_setting('app.tenant', true), '');
ALTER TABLE conversations ALTER COLUMN tenant_id SET DEFAULT NULLIF(current_setting('app.tenant', true), '');
ALTER TABLE turns ALTER COLUMN tenant_id SET DEFAULT NULLIF(current_setting('app.tenant', true), '');
ALTER TABLE callbacks ALTER COLUMN tenant_id SET DEFAULT NULLIF(current_setting('app.tenant', true), '');

-- Keys become tenant-scoped: two tenants may each have an agent `demo` and a document `menu-pdf`.
ALTER TABLE knowledge_chunks
    DROP CONSTRAINT knowledge_chunks_agent_fkey,
    DROP CONSTRAINT knowledge_chunks_agent_document_id_fkey,
    DROP CONSTRAINT knowledge_chunks_chunk_id_key;
ALTER TABLE knowledge_documents DROP CONSTRAINT knowledge_documents_agent_fkey;
ALTER TABLE conversations DROP CONSTRAINT conversations_agent_fkey;
ALTER TABLE turns DROP CONSTRAINT turns_conversation_id_fkey;
ALTER TABLE callbacks DROP CONSTRAINT callbacks_conversation_id_fkey;

ALTER TABLE agents DROP CONSTRAINT agents_pkey, ADD PRIMARY KEY (tenant_id, name);
ALTER TABLE knowledge_documents
    DROP CONSTRAINT knowledge_documents_pkey,
    ADD PRIMARY KEY (tenant_id, agent, document_id),
    ADD FOREIGN KEY (tenant_id, agent) REFERENCES agents (tenant_id, name) ON DELETE CASCADE;
ALTER TABLE knowledge_chunks
    ADD UNIQUE (tenant_id, chunk_id),
    ADD FOREIGN KEY (tenant_id, agent) REFERENCES agents (tenant_id, name) ON DELETE CASCADE,
    ADD FOREIGN KEY (tenant_id, agent, document_id)
        REFERENCES knowledge_documents (tenant_id, agent, document_id) ON DELETE CASCADE;
DROP INDEX knowledge_chunks_agent;
DROP INDEX knowledge_chunks_document;
CREATE INDEX knowledge_chunks_agent ON knowledge_chunks (tenant_id, agent);
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (tenant_id, agent, document_id, position);

-- Conversation ids are random UUIDs, unique on their own; (tenant_id, id) is what turns point at, so a
-- turn can only belong to a conversation of its own tenant.
ALTER TABLE conversations
    ADD UNIQUE (tenant_id, id),
    ADD FOREIGN KEY (tenant_id, agent) REFERENCES agents (tenant_id, name);
CREATE INDEX conversations_tenant ON conversations (tenant_id, created_at);
ALTER TABLE turns
    DROP CONSTRAINT turns_pkey,
    DROP CONSTRAINT turns_conversation_id_request_id_key,
    ADD PRIMARY KEY (tenant_id, conversation_id, turn),
    ADD UNIQUE (tenant_id, conversation_id, request_id),
    ADD FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE;
ALTER TABLE callbacks
    DROP CONSTRAINT callbacks_pkey,
    ADD PRIMARY KEY (tenant_id, conversation_id, turn, call_index),
    ADD FOREIGN KEY (tenant_id, conversation_id) REFERENCES conversations (tenant_id, id) ON DELETE CASCADE;

-- What the app may do at all (row-level security then decides which rows).
GRANT SELECT ON tenants TO vao_app;
GRANT SELECT, INSERT, UPDATE ON agents, conversations, api_keys TO vao_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON knowledge_documents, knowledge_chunks TO vao_app;
GRANT SELECT, INSERT ON turns, callbacks TO vao_app;
GRANT USAGE ON SEQUENCE knowledge_chunks_id_seq TO vao_app;

ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tenants
    USING (id = NULLIF(current_setting('app.tenant', true), ''))
    WITH CHECK (id = NULLIF(current_setting('app.tenant', true), ''));

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY[
        'agents', 'knowledge_documents', 'knowledge_chunks', 'conversations', 'turns', 'callbacks', 'api_keys'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I'
            ' USING (tenant_id = NULLIF(current_setting(''app.tenant'', true), ''''))'
            ' WITH CHECK (tenant_id = NULLIF(current_setting(''app.tenant'', true), ''''))',
            tenant_table
        );
    END LOOP;
END
$$;

-- Verifying an API key needs its row before the tenant is known: this function, run as the owner,
-- returns the one key with this public id, and nothing else. The owner may read api_keys for it
-- (FORCE would hide every row from it otherwise); the app role may not.
CREATE POLICY key_lookup ON api_keys FOR SELECT TO CURRENT_USER USING (true);

CREATE FUNCTION api_key_by_id(key_id text) RETURNS SETOF api_keys
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT * FROM public.api_keys WHERE id = key_id $$;
REVOKE ALL ON FUNCTION api_key_by_id(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api_key_by_id(text) TO vao_app;
