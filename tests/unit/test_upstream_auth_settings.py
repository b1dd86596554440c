"""Entra-authenticated Web PubSub events need the tenant and the service's identity named (shared/config.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.config import Settings
from shared.realtime.upstream import UpstreamAuth, audiences_of

TENANT = "11111111-2222-3333-4444-555555555555"
SERVICE = "66666666-7777-8888-9999-000000000000"


def test_an_upstream_audience_without_the_services_identity_is_refused() -> None:
    """An Azure service's audience is one any identity of the tenant can get a token for."""
    with pytest.raises(ValidationError, match="WEB_PUBSUB_UPSTREAM_PRINCIPAL_ID"):
        Settings(web_pubsub_upstream_audience="https://management.azure.com", azure_tenant_id=TENANT)
    with pytest.raises(ValidationError, match="AZURE_TENANT_ID"):
        Settings(web_pubsub_upstream_audience="https://management.azure.com", web_pubsub_upstream_principal_id=SERVICE)


def test_web_pubsub_by_identity_without_a_key_needs_its_events_checked_by_token() -> None:
    with pytest.raises(ValidationError, match="WEB_PUBSUB_UPSTREAM_AUDIENCE"):
        Settings(web_pubsub_endpoint="https://voice.webpubsub.azure.com")
    Settings(
        web_pubsub_endpoint="https://voice.webpubsub.azure.com",
        web_pubsub_upstream_audience="api://voice-agent-events",
        web_pubsub_upstream_principal_id=SERVICE,
        azure_tenant_id=TENANT,
    )


def test_with_audience_tenant_and_identity_events_are_checked_by_token() -> None:
    settings = Settings(
        web_pubsub_upstream_audience="https://management.azure.com",
        azure_tenant_id=TENANT,
        web_pubsub_upstream_principal_id=SERVICE.upper(),
    )
    auth = UpstreamAuth.from_settings(settings)
    assert auth is not None
    assert auth.principal_id == SERVICE
    assert UpstreamAuth.from_settings(Settings()) is None, "no audience: ce-signature checks the events"


@pytest.mark.parametrize("configured", ["https://management.azure.com", "https://management.azure.com/"])
def test_the_audience_is_taken_as_entra_may_write_it_with_or_without_a_trailing_slash(configured: str) -> None:
    assert audiences_of(configured) == ("https://management.azure.com", "https://management.azure.com/")
