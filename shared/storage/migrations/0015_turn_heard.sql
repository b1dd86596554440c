-- A phone caller who speaks over a reply already stored (barge-in) cuts it back to the sentences they
-- heard (shared/barge_in.py): the app may rewrite a turn's reply_text, and nothing else of a turn.
-- turns is tenant-scoped (0011: the tenant_isolation policy covers every command).

GRANT UPDATE (reply_text) ON turns TO vao_app;
