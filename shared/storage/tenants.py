"""Tenants: whether the current one exists (the app's view, one row at most), and making one (the owner's).

Signing in proves who a person is and which tenant their token names; only a tenant that exists here
may act, so a token naming an unknown one is refused before any route works on its behalf. Tenants
are made by the operator with the migrating login (`python -m shared.storage.tenants create <id>
<name>`): the app's role may only read its own row.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import psycopg

from shared.storage import entra
from shared.storage.migrations import apply_migrations
from shared.storage.postgres import Pool, tenant_connection
from shared.tenancy import TENANT_ID


class TenantRepository:
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def current_exists(self) -> bool:
        with tenant_connection(self._pool) as conn:
            return conn.execute("SELECT 1 FROM tenants").fetchone() is not None


def create_tenant(database_url: str, tenant_id: str, name: str) -> bool:
    """Make the tenant (True), or find it made already (False). Runs as the login in `database_url`, which
    must own the tables; the tenants policy binds the owner too, so it names the tenant it writes."""
    if not TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    if not 1 <= len(name.strip()) <= 200:
        raise ValueError("a tenant needs a name of 1 to 200 characters")
    apply_migrations(database_url)
    with psycopg.connect(database_url) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.tenant', %s, true)", (tenant_id,))
        made = conn.execute(
            "INSERT INTO tenants (id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING", (tenant_id, name.strip())
        )
        return made.rowcount == 1


def main(argv: Sequence[str] | None = None) -> int:
    from shared.security.roles import KEY_SCOPES
    from shared.services import services
    from shared.tenancy import tenant_scope

    parser = argparse.ArgumentParser(prog="python -m shared.storage.tenants", description="Make tenants and keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="make a tenant (id: lower-case letters, digits, -)")
    create.add_argument("tenant")
    create.add_argument("name")
    first_key = commands.add_parser("key", help="make an API key with every key scope (shown once)")
    first_key.add_argument("tenant")
    first_key.add_argument("name")
    args = parser.parse_args(argv)
    svc = services()
    if args.command == "create":
        database_url = svc.settings.database_url
        if svc.settings.database_entra_auth:  # the administrator's own token (az / azd login)
            database_url = entra.database_url_with_token(database_url, entra.credential())
        try:
            made = create_tenant(database_url, args.tenant, args.name)
        except ValueError as error:
            parser.error(str(error))
        print(f"tenant {args.tenant}: {'made' if made else 'exists already'}")
        return 0
    with tenant_scope(args.tenant):
        if not svc.tenants.current_exists():
            parser.error(f"no tenant {args.tenant!r}: create it first")
        issued = svc.api_keys.create(args.tenant, args.name, KEY_SCOPES, created_by="operator")
    print(issued.key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
