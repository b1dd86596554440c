"""Entra token logins (DATABASE_ENTRA_AUTH, REDIS_ENTRA_AUTH) against real servers that check the token.

The machine's Postgres trusts every local login, so these tests run a private Postgres (the pgserver
wheel) whose app role must give a password, and a private Redis with an ACL user. The fake managed identity
endpoint (tests/fakes/managed_identity.py) makes each token it issues that role's and that user's only
password, so a stale or wrong token genuinely fails to log in. The app builds its clients as in Azure:
`Services` with real azure-identity (DefaultAzureCredential -> App Service managed identity), Microsoft's
azure-postgresql-auth and redis-entraid.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis
from azure_postgresql_auth.psycopg3 import EntraConnection
from psycopg import sql

from devhost import standins
from scripts.postprovision import Target, run
from shared.config import REPOSITORY_ROOT, Settings
from shared.errors import TooManyRequests
from shared.security.rate_limits import RateLimiter
from shared.services import Services
from shared.storage import entra
from shared.storage.migrations import apply_migrations
from tests.fakes.managed_identity import FakeManagedIdentity

POSTGRES_AUDIENCE = "https://ossrdbms-aad.database.windows.net"
REDIS_AUDIENCE = "https://redis.azure.com"
WAIT_SECONDS = 30


@dataclass(frozen=True)
class PasswordPostgres:
    admin_url: str
    """The superuser over the Unix socket (trusted, as the Entra administrator would be by token)."""
    socket_dir: str

    def url(self, user: str, database: str) -> str:
        return f"postgresql://{user}@/{database}?host={self.socket_dir}&sslmode=require"


@pytest.fixture(scope="module")
def password_postgres() -> Iterator[PasswordPostgres]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        from pgserver.postgres_server import PostgresServer

    # Not under pytest's basetemp: concurrent pytest runs on this machine prune each other's basetemps.
    parent = Path(tempfile.mkdtemp(prefix="entra-postgres-"))
    pgdata = parent / "data"
    pgdata.mkdir()
    server = PostgresServer(pgdata, cleanup_mode="delete")
    # Only the superuser is trusted; every other role must send its password (here: the current token).
    (pgdata / "pg_hba.conf").write_text("local all postgres trust\nlocal all all scram-sha-256\n")
    admin_url = server.get_uri("postgres")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    yield PasswordPostgres(admin_url, str(pgdata))
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


def _role_password_is_the_token(admin_url: str, role: str) -> Callable[[str, str], None]:
    """The role's password is the last token issued: a connection that logs in with an older one fails."""

    def on_issue(audience: str, token: str) -> None:
        if audience == POSTGRES_AUDIENCE:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(token)))

    return on_issue


@pytest.fixture
def app_database(password_postgres: PasswordPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """A migrated database owned by the superuser, and a login role for the identity that may only become
    vao_app: what the post-provision step leaves in Azure."""
    name = f"entra_{request.node.name[-20:].lower().replace('[', '_').replace(']', '')}"
    with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    owner_url = password_postgres.admin_url.replace("/postgres?", f"/{name}?")
    apply_migrations(owner_url)
    yield name
    with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def identity(password_postgres: PasswordPostgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeManagedIdentity]:
    with FakeManagedIdentity(name="id-voice-entra") as fake:
        fake.on_issue = _role_password_is_the_token(password_postgres.admin_url, fake.name)
        with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(fake.name)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(fake.name)))
            conn.execute(sql.SQL("GRANT vao_app TO {}").format(sql.Identifier(fake.name)))
        for variable, value in fake.environment().items():
            monkeypatch.setenv(variable, value)
        yield fake


def test_the_pool_logs_in_with_a_fresh_token_per_connection(
    password_postgres: PasswordPostgres, app_database: str, identity: FakeManagedIdentity
) -> None:
    settings = Settings(database_url=password_postgres.url(identity.name, app_database), database_entra_auth=True)
    services = Services(settings)
    with services.pool.connection() as conn:
        assert conn.execute("SELECT current_user AS user").fetchone() == {"user": identity.name}
    assert services.tenants.current_exists(), "runs as vao_app for the demo tenant, through row-level security"
    first = len(identity.tokens_for(POSTGRES_AUDIENCE))
    assert first >= 1

    # A new connection after the password moved on (the last token issued is the only one that works):
    # it asks for a token of its own and logs in with it.
    services.pool.resize(min_size=1, max_size=2)
    with services.pool.connection() as one, services.pool.connection() as two:
        assert one.execute("SELECT 1 AS ok").fetchone() == two.execute("SELECT 1 AS ok").fetchone()
    assert len(identity.tokens_for(POSTGRES_AUDIENCE)) > first
    services.pool.close()


def test_the_app_does_not_migrate_a_schema_its_identity_does_not_own(
    password_postgres: PasswordPostgres, app_database: str, identity: FakeManagedIdentity
) -> None:
    """Were it to migrate, yoyo would need tables the identity has no right to: the pool would not open."""
    settings = Settings(database_url=password_postgres.url(identity.name, app_database), database_entra_auth=True)
    services = Services(settings)
    with services.pool.connection() as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'turns'").fetchone()
    assert owner == {"tableowner": "postgres"}
    services.pool.close()


def test_a_token_that_is_no_longer_the_password_is_refused(
    password_postgres: PasswordPostgres, app_database: str, identity: FakeManagedIdentity
) -> None:
    url = password_postgres.url(identity.name, app_database)
    stale = entra.database_url_with_token(url, entra.credential())
    with psycopg.connect(stale):
        pass  # the token just issued is the password
    identity.on_issue = None  # tokens issued from now on are not the role's password
    kwargs = entra.postgres_connect_kwargs(url, entra.credential())
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        EntraConnection.connect(url, **kwargs)


def test_without_a_token_the_role_cannot_log_in(password_postgres: PasswordPostgres, app_database: str) -> None:
    """The server really checks passwords: Entra auth off, no password in the URL, no login."""
    with FakeManagedIdentity(name="id-voice-entra") as fake:
        with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(fake.name)))
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'not-a-token'").format(sql.Identifier(fake.name)))
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(password_postgres.url(fake.name, app_database))


@dataclass(frozen=True)
class PrivateRedis:
    url: str
    """No user, no password: what REDIS_URL holds with Entra auth (the token provider logs in)."""
    admin_url: str
    """The test harness's own ACL user: the default user is off, so nothing logs in without a password."""


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = standins.start_redis(tmp_path, port=0)
    password = secrets.token_urlsafe(16)
    admin = redis.Redis.from_url(server.url)
    admin.acl_setuser(
        "harness", enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"], commands=["+@all"]
    )
    admin.acl_setuser("default", enabled=False)
    admin.close()
    yield PrivateRedis(server.url, server.url.replace("redis://", f"redis://harness:{password}@"))
    server.stop()


def _acl_user_accepts_the_token(
    admin_url: str, user: str, *, only_the_latest: bool = False
) -> Callable[[str, str], None]:
    """Every token issued becomes one more password of the user, as every unexpired token is valid in Azure;
    `only_the_latest`: it replaces the others, so a login with an earlier one fails."""

    def on_issue(audience: str, token: str) -> None:
        if audience == REDIS_AUDIENCE:
            admin = redis.Redis.from_url(admin_url)
            admin.acl_setuser(
                user,
                enabled=True,
                passwords=[f"+{token}"],
                reset_passwords=only_the_latest,
                keys=["*"],
                channels=["*"],
                commands=["+@all"],
            )
            admin.close()

    return on_issue


@pytest.fixture
def redis_identity(private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeManagedIdentity]:
    with FakeManagedIdentity(lifetime_seconds=3600) as fake:
        fake.on_issue = _acl_user_accepts_the_token(private_redis.admin_url, fake.object_id)
        for variable, value in fake.environment().items():
            monkeypatch.setenv(variable, value)
        yield fake


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _auth_calls(url: str) -> tuple[int, int]:
    stats = redis.Redis.from_url(url).info("commandstats").get("cmdstat_auth", {})
    return int(stats.get("calls", 0)), int(stats.get("failed_calls", 0))


def test_redis_logs_in_as_the_identity_and_re_authenticates_before_the_token_expires(
    private_redis: PrivateRedis, redis_identity: FakeManagedIdentity
) -> None:
    redis_identity.lifetime_seconds = 3
    services = Services(Settings(redis_url=private_redis.url, redis_entra_auth=True))
    client = services.redis
    assert _text(client.acl_whoami()) == redis_identity.object_id
    connection_id = client.client_id()
    before, failed = _auth_calls(private_redis.admin_url)
    assert failed == 0

    # From now on only the newest token logs in. The token lives 3 s: the provider renews it at 70 % of that,
    # and redis-py logs the pooled connection in again with the new one (AUTH), staying the same connection.
    redis_identity.on_issue = _acl_user_accepts_the_token(
        private_redis.admin_url, redis_identity.object_id, only_the_latest=True
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while _auth_calls(private_redis.admin_url)[0] == before and time.monotonic() < deadline:
        time.sleep(0.1)
    calls, failed = _auth_calls(private_redis.admin_url)
    assert calls > before, "the connection logged in again"
    assert failed == 0, "with the renewed token, the only one the user now accepts"
    assert client.client_id() == connection_id
    assert client.set("entra:probe", "1")
    # The renewals would go on for the life of the process (as in Azure); this test's ends here.
    client.connection_pool.connection_kwargs["credential_provider"]._token_mgr.stop()


def test_async_redis_and_the_rate_limits_log_in_with_tokens(
    private_redis: PrivateRedis, redis_identity: FakeManagedIdentity
) -> None:
    settings = Settings(redis_url=private_redis.url, redis_entra_auth=True, rate_limit_per_ip="2/minute")
    services = Services(settings)

    async def scenario() -> str:
        whoami = await services.async_redis.acl_whoami()
        limiter = RateLimiter.from_settings(settings)
        address = ipaddress.ip_address("203.0.113.9")
        await limiter.check(ip=address)
        await limiter.check(ip=address)
        with pytest.raises(TooManyRequests):  # counted in Redis, so the login worked (it fails open otherwise)
            await limiter.check(ip=address)
        return _text(whoami)

    assert asyncio.run(scenario()) == redis_identity.object_id


def test_redis_refuses_a_token_that_is_not_the_password(
    private_redis: PrivateRedis, redis_identity: FakeManagedIdentity
) -> None:
    redis.Redis.from_url(private_redis.admin_url).acl_setuser(
        redis_identity.object_id, enabled=True, passwords=["+someone-else"], keys=["*"], commands=["+@all"]
    )
    redis_identity.on_issue = None
    client = entra.redis_client(private_redis.url, entra_auth=True)
    with pytest.raises(redis.AuthenticationError):
        client.ping()


# Azure's server-side function, which exists only on Azure Database for PostgreSQL: here it makes the login
# role the way Azure's does for a service principal (no password of its own: the token is checked).
PGAADAUTH_STAND_IN = """
CREATE OR REPLACE FUNCTION pgaadauth_create_principal_with_oid(
    role_name text, object_id text, object_type text, is_admin boolean, is_mfa boolean
) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF object_type <> 'service' OR is_admin OR is_mfa THEN
        RAISE EXCEPTION 'unexpected principal: % % % %', object_type, object_id, is_admin, is_mfa;
    END IF;
    EXECUTE format('CREATE ROLE %I LOGIN', role_name);
    RETURN format('Created role for "%s"', role_name);
END
$$;
"""


def test_the_post_provision_step_leaves_a_role_the_app_logs_in_with(
    password_postgres: PasswordPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "entra_postprovision"
    with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute('DROP ROLE IF EXISTS "id-voice-provisioned"')
        conn.execute(PGAADAUTH_STAND_IN)

    def role_password_is_the_token(audience: str, token: str) -> None:
        if audience == POSTGRES_AUDIENCE:  # once the step has made the role
            with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'id-voice-provisioned'").fetchone():
                    conn.execute(sql.SQL('ALTER ROLE "id-voice-provisioned" PASSWORD {}').format(sql.Literal(token)))

    with FakeManagedIdentity(name="id-voice-provisioned", on_issue=role_password_is_the_token) as identity:
        for variable, value in identity.environment().items():
            monkeypatch.setenv(variable, value)
        app_url = password_postgres.url(identity.name, name)
        target = Target(app_url, "postgres", identity.name, identity.object_id)
        first = run(target, entra.credential(), REPOSITORY_ROOT / "agents")
        again = run(target, entra.credential(), REPOSITORY_ROOT / "agents")

        assert (first.role_created, again.role_created) == (True, False)
        assert first.migrations_applied > 0
        assert again.migrations_applied == 0
        assert first.agents_synced >= 1
        assert again.agents_synced == 0

        services = Services(Settings(database_url=app_url, database_entra_auth=True))
        with services.pool.connection() as app:
            member = app.execute("SELECT pg_has_role(current_user, 'vao_app', 'MEMBER') AS member").fetchone()
            owner = app.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'agents'").fetchone()
        assert member == {"member": True}
        assert owner == {"tableowner": "postgres"}, "the administrator owns the schema, not the app"
        assert services.tenants.current_exists()
        services.pool.close()
    with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_tenant_command_logs_in_with_the_administrators_token(
    password_postgres: PasswordPostgres, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m shared.storage.tenants create` under DATABASE_ENTRA_AUTH, as the Entra administrator who owns
    the database (here a role whose password is the token, as the server would check it)."""
    name, admin = "entra_tenants", "ops-admin"
    with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(admin)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(admin)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(admin)))
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'vao_app'").fetchone():
            # vao_app is the server's, made by the first database's migration: as its maker would, the
            # administrator may grant it (migration 0011 grants it to the migrating login).
            conn.execute(sql.SQL("GRANT vao_app TO {} WITH ADMIN OPTION").format(sql.Identifier(admin)))
    with psycopg.connect(password_postgres.admin_url.replace("/postgres?", f"/{name}?"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")  # allow-listed and made by Azure's administrator role there

    with FakeManagedIdentity(
        name=admin, on_issue=_role_password_is_the_token(password_postgres.admin_url, admin)
    ) as me:
        for variable, value in me.environment().items():
            monkeypatch.setenv(variable, value)
        monkeypatch.setenv("DATABASE_URL", password_postgres.url(admin, name))
        monkeypatch.setenv("DATABASE_ENTRA_AUTH", "true")
        from shared.config import get_settings
        from shared.services import _build
        from shared.storage.tenants import main

        get_settings.cache_clear()
        _build.cache_clear()
        try:
            assert main(["create", "acme", "Acme"]) == 0
            assert main(["create", "acme", "Acme"]) == 0
        finally:
            get_settings.cache_clear()
            _build.cache_clear()
        assert capsys.readouterr().out.splitlines() == ["tenant acme: made", "tenant acme: exists already"]
        assert len(me.tokens_for(POSTGRES_AUDIENCE)) >= 2, "each run logged in with a token of its own"
    with psycopg.connect(password_postgres.admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
