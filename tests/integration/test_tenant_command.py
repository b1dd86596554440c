"""The operator's command makes a tenant once and a first key that works for that tenant only."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.security.api_keys import ApiKeys
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.migrations import apply_migrations
from shared.storage.postgres import open_pool
from shared.storage.tenants import create_tenant, main


def test_a_tenant_is_made_once_and_its_first_key_verifies_as_that_tenant(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = new_database()
    apply_migrations(url)
    assert create_tenant(url, "acme", "Acme") is True
    assert create_tenant(url, "acme", "Acme again") is False
    with pytest.raises(ValueError, match="not a tenant id"):
        create_tenant(url, "Not Valid", "x")

    monkeypatch.setenv("DATABASE_URL", url)
    from shared.config import get_settings
    from shared.services import _build

    get_settings.cache_clear()
    _build.cache_clear()
    try:
        assert main(["key", "acme", "first"]) == 0
        key = capsys.readouterr().out.strip()
        with pytest.raises(SystemExit):
            main(["key", "globex", "first"])
    finally:
        get_settings.cache_clear()
        _build.cache_clear()
    pool = open_pool(url, 2)
    try:
        assert ApiKeys(ApiKeyRepository(pool)).verify(key).tenant == "acme"
    finally:
        pool.close()
