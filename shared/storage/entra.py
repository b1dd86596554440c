"""Microsoft Entra ID logins for Postgres and Redis: tokens instead of passwords (DATABASE_ENTRA_AUTH,
REDIS_ENTRA_AUTH), so a deployed app holds no database or cache secret.

The token comes from azure-identity's `DefaultAzureCredential`: in Azure the user-assigned managed identity
that AZURE_CLIENT_ID names, on a laptop the developer's `az`/`azd` login (the post-provision step).

Postgres: Microsoft's azure-postgresql-auth `EntraConnection` asks the credential for a token on every new
connection and sends it as the password (azure-identity caches a token until shortly before it expires, so
most connections cost no request). The login is the role DATABASE_URL names.

Redis: redis-entraid's credential provider logs in with the token's object id (`oid`) as the user and the
token as the password, and keeps renewing the token in the background (at 70 % of its lifetime): redis-py
then re-authenticates every pooled connection with the new one (`AUTH`), so connections that live longer
than a token stay logged in. One provider per client: a provider calls back one client's pools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from psycopg.conninfo import conninfo_to_dict

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from redis_entraid.cred_provider import EntraIdCredentialsProvider

POSTGRES_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
"""Azure Database for PostgreSQL's token audience (learn.microsoft.com, "Connect with managed identity")."""
REDIS_SCOPE = "https://redis.azure.com/.default"
"""Azure Managed Redis's token audience (redis-entraid README)."""


def credential() -> TokenCredential:
    """A new DefaultAzureCredential: each reads the environment (AZURE_CLIENT_ID, IDENTITY_ENDPOINT) when made."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def postgres_connect_kwargs(database_url: str, token_source: TokenCredential) -> dict[str, Any]:
    """What `EntraConnection.connect` needs beside the URL: the credential, and the URL's own user (without it
    the library would take the user from the token's claims instead of the role DATABASE_URL names)."""
    kwargs: dict[str, Any] = {"credential": token_source}
    user = conninfo_to_dict(database_url).get("user")
    if user:
        kwargs["user"] = user
    return kwargs


def database_url_with_token(database_url: str, token_source: TokenCredential) -> str:
    """DATABASE_URL with a fresh token as its password, for what takes only a URI (yoyo's migrations, a
    one-off `psycopg.connect`). Valid as long as the token: use it at once, never store it."""
    token = token_source.get_token(POSTGRES_SCOPE).token
    parts = urlsplit(database_url)
    user = quote(parts.username or "", safe="")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:{quote(token, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redis_credentials() -> EntraIdCredentialsProvider:
    """A renewing token provider for one Redis client (DefaultAzureCredential, the Redis scope)."""
    from redis_entraid.cred_provider import create_from_default_azure_credential

    return create_from_default_azure_credential((REDIS_SCOPE,))


def redis_client(url: str, *, entra_auth: bool, **connection: Any) -> redis.Redis:
    """A Redis client for REDIS_URL. With Entra auth the provider is given to the client as well as to its
    pool: only then does redis-py re-authenticate the pool's connections when the token is renewed
    (`Redis.from_url` passes it to the connections alone)."""
    if not entra_auth:
        return redis.Redis.from_url(url, **connection)
    provider = redis_credentials()
    pool = redis.ConnectionPool.from_url(url, credential_provider=provider, **connection)
    return redis.Redis(connection_pool=pool, credential_provider=provider)


def async_redis_pool(url: str, provider: EntraIdCredentialsProvider, **connection: Any) -> aioredis.ConnectionPool:
    return aioredis.ConnectionPool.from_url(url, credential_provider=provider, **connection)


def async_redis_client(url: str, *, entra_auth: bool, **connection: Any) -> aioredis.Redis:
    """The asyncio twin of `redis_client`."""
    if not entra_auth:
        return aioredis.Redis.from_url(url, **connection)
    provider = redis_credentials()
    return aioredis.Redis(connection_pool=async_redis_pool(url, provider, **connection), credential_provider=provider)
