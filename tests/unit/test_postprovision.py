"""The post-provision script's own logic: what it reads from the azd environment, and whom it logs in as."""

from __future__ import annotations

import pytest

from scripts.postprovision import Target

ENVIRONMENT = {
    "DATABASE_URL": "postgresql://id-abc@psql-abc.postgres.database.azure.com:5432/voiceagent?sslmode=require",
    "DATABASE_ADMIN": "ops@contoso.example",
    "AZURE_IDENTITY_NAME": "id-abc",
    "AZURE_IDENTITY_PRINCIPAL_ID": "0f4e1b8a-0000-4000-8000-000000000001",
}


def test_the_administrator_logs_in_to_the_apps_server_and_database() -> None:
    target = Target.from_environment(ENVIRONMENT)
    assert target.admin_url() == (
        "postgresql://ops%40contoso.example@psql-abc.postgres.database.azure.com:5432/voiceagent?sslmode=require"
    )
    assert target.admin_url("postgres") == (
        "postgresql://ops%40contoso.example@psql-abc.postgres.database.azure.com:5432/postgres?sslmode=require"
    )


@pytest.mark.parametrize("missing", sorted(ENVIRONMENT))
def test_a_missing_value_stops_it_with_the_name(missing: str) -> None:
    environment = {name: value for name, value in ENVIRONMENT.items() if name != missing}
    with pytest.raises(SystemExit, match=missing):
        Target.from_environment(environment)
