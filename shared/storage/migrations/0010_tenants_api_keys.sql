-- Tenants, and the API keys services present as `X-API-Key`. Only a key's SHA-256 is stored; `id` is
-- its public part (shown in lists, and the lookup), `replaced_by` the key a rotation made in its place.
-- Other tables gain their tenant in a later migration (with row-level security).

CREATE TABLE tenants (
    id          text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO tenants (id, name) VALUES ('demo', 'Demo') ON CONFLICT DO NOTHING;

CREATE TABLE api_keys (
    id            text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    tenant_id     text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_hash      bytea NOT NULL CHECK (length(key_hash) = 32),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    replaced_by   text REFERENCES api_keys (id)
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);
