"""Web PubSub reached with the app's Microsoft Entra identity instead of an access key (WEB_PUBSUB_ENDPOINT,
local auth off in Azure): the app's own sender, built by `Services` from the settings, gets its token with
azure-identity's real `DefaultAzureCredential` from an App Service managed identity endpoint (the fake Entra
of tests/fakes/oidc_server.py, which signs with the keys it publishes), and the local Web PubSub checks
that token as the service does: the tenant's signature, issuer and the service's audience."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential
from azure.messaging.webpubsubclient.models import CallbackType, OnGroupDataMessageArgs
from azure.messaging.webpubsubservice import WebPubSubServiceClient
from pydantic import SecretStr

from devhost.webpubsub import ENTRA_AUDIENCE
from shared.config import Settings
from shared.services import Services
from tests.fakes.oidc_server import IDENTITY_HEADER, TENANT_ID, FakeOpenIdProvider, new_rsa_key
from tests.webpubsub_local import HUB, Emulator, local_webpubsub

APP_CLIENT_ID = "0c1d2e3f-0000-4000-8000-0000000000a1"
APP_OBJECT_ID = "0c1d2e3f-0000-4000-8000-0000000000b2"


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeOpenIdProvider]:
    with FakeOpenIdProvider(identities={APP_CLIENT_ID: APP_OBJECT_ID}) as provider:
        yield provider


@pytest.fixture(scope="module")
def emulator(idp: FakeOpenIdProvider) -> Iterator[Emulator]:
    with local_webpubsub(entra_tenant=TENANT_ID, entra_authority=idp.url) as local:
        yield local


@pytest.fixture
def app_identity(idp: FakeOpenIdProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    """What Azure Functions gives the app: the managed identity endpoint, and the user-assigned identity to use."""
    monkeypatch.setenv("IDENTITY_ENDPOINT", idp.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
    monkeypatch.setenv("AZURE_CLIENT_ID", APP_CLIENT_ID)
    for variable in ("AZURE_CLIENT_SECRET", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT"):
        monkeypatch.delenv(variable, raising=False)


def test_the_app_sends_and_hands_out_client_urls_with_its_identity(
    emulator: Emulator, idp: FakeOpenIdProvider, app_identity: None
) -> None:
    settings = Settings(
        web_pubsub_connection_string=SecretStr(""),
        web_pubsub_endpoint=emulator.endpoint.url,
        web_pubsub_hub=HUB,
        web_pubsub_upstream_audience="api://voice-agent-events",  # events by token: no key to check them with
        web_pubsub_upstream_principal_id="00000000-0000-4000-8000-00000000000e",
        azure_tenant_id=TENANT_ID,
    )
    sender = Services(settings).realtime
    assert sender is not None
    url = sender.client_url("demo.0f3c5e0e-0000-4000-8000-000000000001", "conversation.x", 5)
    assert url.startswith(f"ws://127.0.0.1:{emulator.endpoint.url.rsplit(':', 1)[1]}/client/hubs/{HUB}?access_token=")
    client = emulator.client(url)
    received: list[object] = []
    client.subscribe(CallbackType.GROUP_MESSAGE, lambda args: received.append(_data(args)))
    client.open()
    try:
        sender.send("conversation.x", {"type": "reply.delta", "text": "hello"})
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.close()
    assert received == [{"type": "reply.delta", "text": "hello"}]
    assert (ENTRA_AUDIENCE, APP_OBJECT_ID) in idp.identity_tokens, "the user-assigned identity of AZURE_CLIENT_ID"


def test_a_token_for_another_audience_is_refused(emulator: Emulator, app_identity: None) -> None:
    other = WebPubSubServiceClient(
        emulator.endpoint.url, HUB, DefaultAzureCredential(), credential_scopes=["api://someone-else/.default"]
    )
    with pytest.raises(HttpResponseError) as refused:
        other.send_to_all({"type": "x"}, content_type="application/json", enforce_https=False)
    assert refused.value.status_code == 401


@pytest.mark.parametrize("case", ["expired", "another key", "another tenant", "v1 issuer of another tenant"])
def test_forged_and_expired_entra_tokens_are_refused(emulator: Emulator, idp: FakeOpenIdProvider, case: str) -> None:
    now = int(time.time())
    token = {
        "expired": lambda: idp.identity_token(ENTRA_AUDIENCE, nbf=now - 7200, iat=now - 7200, exp=now - 3600),
        "another key": lambda: idp.identity_token(ENTRA_AUDIENCE, signing_key=new_rsa_key()),
        "another tenant": lambda: idp.identity_token(
            ENTRA_AUDIENCE, iss="https://login.microsoftonline.com/11111111-0000-4000-8000-000000000000/v2.0"
        ),
        "v1 issuer of another tenant": lambda: idp.identity_token(
            ENTRA_AUDIENCE, iss="https://sts.windows.net/11111111-0000-4000-8000-000000000000/"
        ),
    }[case]()
    answer = requests.post(
        f"{emulator.endpoint.url}/api/hubs/{HUB}/:send?api-version=2024-12-01",
        json={"type": "x"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 401, answer.text
    valid = idp.identity_token(ENTRA_AUDIENCE)
    accepted = requests.post(
        f"{emulator.endpoint.url}/api/hubs/{HUB}/:send?api-version=2024-12-01",
        json={"type": "x"},
        headers={"Authorization": f"Bearer {valid}"},
        timeout=10,
    )
    assert accepted.status_code == 202, accepted.text


def _data(args: OnGroupDataMessageArgs) -> object:
    return args.data
