-- A conversation may be deleted (DELETE /api/conversations/{id}): the app's role may now remove its row,
-- and its turns and callbacks go with it (their foreign keys cascade, 0011). Row-level security still
-- keeps a delete to the tenant's own rows; the audit log stays append-only.

GRANT DELETE ON conversations TO vao_app;
