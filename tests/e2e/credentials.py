"""API keys the e2e tests make for themselves, straight in a devhost's database, as the operator would."""

from __future__ import annotations

from collections.abc import Iterable

from devhost.process import DevHost
from shared.security.api_keys import ApiKeys, IssuedApiKey
from shared.security.roles import KEY_SCOPES, Scope
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.postgres import open_pool
from shared.storage.tenants import create_tenant
from shared.tenancy import DEMO_TENANT, tenant_scope


def issue_key(host: DevHost, tenant: str = DEMO_TENANT, scopes: Iterable[Scope] = KEY_SCOPES) -> IssuedApiKey:
    """A key of `tenant` (made first when it does not exist yet) with `scopes`."""
    create_tenant(host.env["DATABASE_URL"], tenant, tenant.title())
    pool = open_pool(host.env["DATABASE_URL"], 2)
    try:
        with tenant_scope(tenant):
            return ApiKeys(ApiKeyRepository(pool)).create(tenant, "tests", set(scopes), "tests")
    finally:
        pool.close()


def key_header(host: DevHost, tenant: str = DEMO_TENANT, scopes: Iterable[Scope] = KEY_SCOPES) -> dict[str, str]:
    return {"X-API-Key": issue_key(host, tenant, scopes).key}
