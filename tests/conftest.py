"""Real backing services for the tests: Postgres, Redis and Azurite.

The machine's Postgres (127.0.0.1:5432) and Redis (127.0.0.1:6379) are used when they answer, each
test run in its own database and key prefix; otherwise the same embedded servers `make dev` uses
are started. `TEST_POSTGRES_ADMIN_URL` and `TEST_REDIS_URL` point the tests elsewhere. Azurite
always runs fresh, in memory, on free ports.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis

from devhost import standins
from shared.agent.catalog import load_agent_file
from shared.config import REPOSITORY_ROOT, Settings
from shared.models import AgentProfile
from shared.services import Services
from shared.tenancy import DEMO_TENANT, tenant_scope

ADMIN_URL = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
LOCAL_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _postgres_answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def _with_database(url: str, name: str) -> str:
    """The same server URI, another database (a URI, because yoyo only takes URIs)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture(scope="session", autouse=True)
def demo_tenant() -> Iterator[str]:
    """Tests and their fixtures work as the demo tenant (the agent files' tenant); tests of tenancy itself
    enter other scopes (or none: `contextvars.Context().run`) inside."""
    with tenant_scope(DEMO_TENANT) as tenant:
        yield tenant


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standins")


@pytest.fixture(scope="session")
def postgres_admin_url(services_dir: Path) -> Iterator[str]:
    """A server we may create databases on."""
    if _postgres_answers(ADMIN_URL):
        yield ADMIN_URL
        return
    server = standins.start_postgres(services_dir)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def new_database(postgres_admin_url: str) -> Iterator[Callable[[], str]]:
    """Creates empty databases on demand; drops them all at the end of the run."""
    created: list[str] = []

    def create() -> str:
        name = f"voice_test_{secrets.token_hex(6)}"
        with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _with_database(postgres_admin_url, name)

    yield create
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(services_dir: Path) -> Iterator[str]:
    if _redis_answers(LOCAL_REDIS_URL):
        yield LOCAL_REDIS_URL
        return
    server = standins.start_redis(services_dir, port=0)
    yield server.url
    server.stop()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"test-{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)


@pytest.fixture(scope="session")
def blob_connection_string(services_dir: Path) -> Iterator[str]:
    server = standins.start_azurite(services_dir, in_memory=True, blob_port=0)
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def demo() -> AgentProfile:
    """The demo agent, as its file in the repository describes it."""
    return load_agent_file(REPOSITORY_ROOT / "agents" / "demo.toml")


AppServices = Callable[..., Services]


@pytest.fixture(scope="module")
def app_services(new_database: Callable[[], str], redis_url: str, blob_connection_string: str) -> Iterator[AppServices]:
    """Builds the app's services as an activity gets them, each on a database, Redis key prefix and Blob
    container of its own, with the agent files synced; settings given override the defaults. Their
    connection pools close with the test module, so a run never holds more than a module's worth."""
    built: list[Services] = []

    def build(**settings: Any) -> Services:
        defaults: dict[str, Any] = {
            "database_url": new_database(),
            "redis_url": redis_url,
            "redis_key_prefix": f"app-{secrets.token_hex(4)}:",
            "blob_connection_string": blob_connection_string,
            "audio_container": f"audio{secrets.token_hex(4)}",
            "agents_dir": REPOSITORY_ROOT / "agents",
            "llm_max_retries": 0,
        }
        services = Services(Settings(**(defaults | settings)))
        _ = services.knowledge  # migrates and syncs the agent files
        built.append(services)
        return services

    yield build
    for services in built:
        services.pool.close()
