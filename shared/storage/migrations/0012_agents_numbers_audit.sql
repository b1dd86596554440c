-- The admin API's tables: agents with every version kept, the phone numbers that route calls to agents,
-- and the audit log of admin actions. Each is tenant-scoped as in 0011: `tenant_id` from `app.tenant`,
-- tenant-leading keys, only the grants the app needs, forced row-level security.

-- Where an agent comes from: its file in AGENTS_DIR (synced into the demo tenant at start; the API may
-- not change it, the next start would undo that) or the admin API. Every agent so far came from a file.
-- An agent the API deletes keeps its row (its conversations point at it) with `deleted_at` set.
ALTER TABLE agents
    ADD COLUMN source text NOT NULL DEFAULT 'file' CHECK (source IN ('file', 'api')),
    ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version > 0),
    ADD COLUMN created_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN deleted_at timestamptz,
    ADD CHECK (deleted_at IS NULL OR source = 'api');
ALTER TABLE agents ALTER COLUMN source DROP DEFAULT, ALTER COLUMN version DROP DEFAULT;
CREATE INDEX agents_created ON agents (tenant_id, created_at, name);

CREATE TABLE agent_versions (
    tenant_id   text NOT NULL DEFAULT NULLIF(current_setting('app.tenant', true), '') REFERENCES tenants (id),
    name        text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    profile     jsonb NOT NULL,
    created_by  text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name, version),
    FOREIGN KEY (tenant_id, name) REFERENCES agents (tenant_id, name)
);

-- The agents so far are each their version 1. FORCE binds the owner too, so it lets go for the backfill
-- (inside this migration's transaction: nobody else sees the table meanwhile).
ALTER TABLE agents NO FORCE ROW LEVEL SECURITY;
UPDATE agents SET created_at = updated_at;
INSERT INTO agent_versions (tenant_id, name, version, profile, created_by, created_at)
    SELECT tenant_id, name, 1, profile, 'file:' || name || '.toml', updated_at FROM agents;
ALTER TABLE agents FORCE ROW LEVEL SECURITY;

-- A number routes inbound calls to exactly one tenant's agent: unique across all tenants.
CREATE TABLE phone_numbers (
    tenant_id   text NOT NULL DEFAULT NULLIF(current_setting('app.tenant', true), '') REFERENCES tenants (id),
    number      text NOT NULL CHECK (number ~ '^\+[1-9][0-9]{6,14}$'),
    agent       text NOT NULL,
    provider    text NOT NULL CHECK (provider IN ('twilio', 'vonage', 'amazon_connect')),
    created_by  text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, number),
    UNIQUE (number),
    FOREIGN KEY (tenant_id, agent) REFERENCES agents (tenant_id, name)
);
CREATE INDEX phone_numbers_agent ON phone_numbers (tenant_id, agent);
CREATE INDEX phone_numbers_created ON phone_numbers (tenant_id, created_at, number);

-- Who did what, when. Append-only for the app: it may add and read entries, never change or remove one.
CREATE TABLE audit_log (
    tenant_id  text NOT NULL DEFAULT NULLIF(current_setting('app.tenant', true), '') REFERENCES tenants (id),
    id         bigserial,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action     text NOT NULL CHECK (action ~ '^[a-z_]{1,40}\.[a-z_]{1,40}$'),
    target     text NOT NULL CHECK (length(target) BETWEEN 1 AND 200),
    details    jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(details) = 'object'),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_log_at ON audit_log (tenant_id, at, id);

GRANT SELECT, INSERT ON agent_versions, audit_log TO vao_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON phone_numbers TO vao_app;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO vao_app;

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY['agent_versions', 'phone_numbers', 'audit_log'] LOOP
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

-- An inbound call names a number before its tenant is known: this function, run as the owner, returns
-- the one number's tenant, agent and provider, and nothing else (as `api_key_by_id` does for keys).
CREATE POLICY number_route ON phone_numbers FOR SELECT TO CURRENT_USER USING (true);

CREATE FUNCTION phone_number_route(phone_number text) RETURNS TABLE (tenant_id text, agent text, provider text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT p.tenant_id, p.agent, p.provider FROM public.phone_numbers p WHERE p.number = phone_number $$;
REVOKE ALL ON FUNCTION phone_number_route(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION phone_number_route(text) TO vao_app;
