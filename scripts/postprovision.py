"""The post-provision step of `azd up` / `azd provision` (azure.yaml, `hooks: postprovision`): what Bicep
cannot do, because it happens inside Postgres.

It runs on the deploying machine, signed in as the deploying user (`azd auth login`, or `az login`), whom
the Bicep made the server's Microsoft Entra administrator, and logs in with that user's Entra token:

1. creates the Postgres role of the app's managed identity, by its object id, in the `postgres` database
   (`pgaadauth_create_principal_with_oid(name, object id, 'service', false, false)`; Azure offers the
   pgaadauth functions in that database only), unless it exists;
2. applies the migrations to the app's database as the administrator, who so owns the schema;
3. grants the identity `vao_app` and nothing else: the app works only through row-level security and
   can neither change the schema nor lift the policies (the app never migrates with DATABASE_ENTRA_AUTH);
4. syncs the agent files (`agents/*.toml`) into Postgres as the demo tenant's agents, so the admin API
   lists them at once. Their knowledge files are loaded by the app on its first start: its identity, not
   the user, holds the Blob, Search and OpenAI roles.

Every step can run again; run the hook again after deploying code that brings migrations
(`azd hooks run postprovision`). It reads the azd environment (the Bicep outputs): DATABASE_URL (the app's:
host, database and the identity's role), DATABASE_ADMIN, AZURE_IDENTITY_NAME and
AZURE_IDENTITY_PRINCIPAL_ID.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from shared.agent.catalog import load_agents
from shared.config import REPOSITORY_ROOT
from shared.storage import entra
from shared.storage.knowledge import KnowledgeRepository
from shared.storage.migrations import apply_migrations
from shared.storage.postgres import APP_ROLE, open_pool
from shared.tenancy import DEMO_TENANT, tenant_scope

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

log = logging.getLogger("postprovision")

REQUIRED = ("DATABASE_URL", "DATABASE_ADMIN", "AZURE_IDENTITY_NAME", "AZURE_IDENTITY_PRINCIPAL_ID")
MAINTENANCE_DATABASE = "postgres"


@dataclass(frozen=True)
class Target:
    database_url: str
    """The app's DATABASE_URL: host, database, the identity's role, no password."""
    admin: str
    identity_name: str
    identity_object_id: str

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Target:
        missing = [name for name in REQUIRED if not environment.get(name)]
        if missing:
            raise SystemExit(f"postprovision: {', '.join(missing)} not set (run it through azd, after provisioning)")
        return cls(
            environment["DATABASE_URL"],
            environment["DATABASE_ADMIN"],
            environment["AZURE_IDENTITY_NAME"],
            environment["AZURE_IDENTITY_PRINCIPAL_ID"],
        )

    def admin_url(self, database: str | None = None) -> str:
        """The same server as the administrator, in the app's database or another one."""
        parts = urlsplit(self.database_url)
        host = parts.netloc.rpartition("@")[2]
        path = f"/{database}" if database else parts.path
        return urlunsplit(parts._replace(netloc=f"{quote(self.admin, safe='')}@{host}", path=path))


@dataclass(frozen=True)
class Report:
    role_created: bool
    migrations_applied: int
    agents_synced: int


def create_identity_role(conn: psycopg.Connection[tuple[object, ...]], name: str, object_id: str) -> bool:
    """The identity's login role, bound to its object id (names of Entra objects need not be unique);
    False when it exists already."""
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        return False
    conn.execute(
        "SELECT * FROM pgaadauth_create_principal_with_oid(%s, %s, 'service', false, false)", (name, object_id)
    )
    return True


def grant_app_role(conn: psycopg.Connection[tuple[object, ...]], name: str) -> None:
    """Membership of vao_app (which the migrations made): the identity's one right beyond logging in."""
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Identifier(name)))


def sync_agents(database_url: str, credential: TokenCredential, agents_dir: Path) -> int:
    """Upsert every agent file as one of the demo tenant's agents; how many changed."""
    pool = open_pool(database_url, 1, entra_auth=True, credential=credential)
    try:
        repository = KnowledgeRepository(pool)
        with tenant_scope(DEMO_TENANT):
            return sum(1 for profile in load_agents(agents_dir) if repository.upsert_agent(profile))
    finally:
        pool.close()


def run(target: Target, credential: TokenCredential, agents_dir: Path) -> Report:
    def connect(url: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(entra.database_url_with_token(url, credential), autocommit=True)

    with connect(target.admin_url(MAINTENANCE_DATABASE)) as conn:
        role_created = create_identity_role(conn, target.identity_name, target.identity_object_id)
    applied = apply_migrations(entra.database_url_with_token(target.admin_url(), credential))
    with connect(target.admin_url()) as conn:
        grant_app_role(conn, target.identity_name)
    synced = sync_agents(target.admin_url(), credential, agents_dir)
    return Report(role_created, applied, synced)


def deploying_user() -> TokenCredential:
    """The user azd (or else the Azure CLI) is signed in as; never a managed identity or AZURE_CLIENT_ID,
    which name the app's identity in the azd environment."""
    from azure.identity import AzureCliCredential, AzureDeveloperCliCredential, ChainedTokenCredential

    return ChainedTokenCredential(AzureDeveloperCliCredential(), AzureCliCredential())


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    target = Target.from_environment(os.environ)
    report = run(target, deploying_user(), REPOSITORY_ROOT / "agents")
    role = "created" if report.role_created else "exists already"
    log.info("postprovision: role %s %s, granted %s", target.identity_name, role, APP_ROLE)
    log.info(
        "postprovision: %d migrations applied, %d agent files synced", report.migrations_applied, report.agents_synced
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
