"""The hub's events authenticated by Microsoft Entra, as Azure Web PubSub sends them with local auth off: the
devhost's local Web PubSub is configured as the Bicep configures the hub (WEB_PUBSUB_UPSTREAM_AUDIENCE), so
it gets a token with its managed identity (azure-identity, from the fake Entra's App Service identity
endpoint) and sends it with every upstream request; the app checks it against the fake tenant's published
keys. A session works end to end; forged, expired, mis-addressed tokens, and tokens of another identity,
are refused `401` with nothing started, a valid `ce-signature` notwithstanding."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from devhost.process import DevHost
from tests.e2e.conftest import StartDevHost
from tests.e2e.test_realtime import EVENTS, access_key, connect, negotiate, signed_headers
from tests.fakes.oidc_server import IDENTITY_HEADER, SYSTEM_IDENTITY, TENANT_ID, FakeOpenIdProvider, new_rsa_key

AUDIENCE = "api://voice-agent-events"


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeOpenIdProvider]:
    with FakeOpenIdProvider() as provider:
        yield provider


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost, idp: FakeOpenIdProvider) -> DevHost:
    return start_devhost(
        WEB_PUBSUB_UPSTREAM_AUDIENCE=AUDIENCE,
        WEB_PUBSUB_UPSTREAM_PRINCIPAL_ID=SYSTEM_IDENTITY,
        AZURE_TENANT_ID=TENANT_ID,
        AZURE_AUTHORITY_HOST=idp.url,
        IDENTITY_ENDPOINT=idp.identity_endpoint,
        IDENTITY_HEADER=IDENTITY_HEADER,
    )


def test_a_session_works_with_the_services_entra_token_on_every_event(host: DevHost, idp: FakeOpenIdProvider) -> None:
    negotiated = negotiate(host)
    session = connect(negotiated)
    try:
        session.say("what are your opening hours", "entra-1")
        assert session.until("reply.done")[-1][2]["id"] == "entra-1"
    finally:
        session.client.close()
    assert (AUDIENCE, SYSTEM_IDENTITY) in idp.identity_tokens, "the emulator asked for its identity's token"


def forged(idp: FakeOpenIdProvider, case: str) -> str | None:
    now = int(time.time())
    makers: dict[str, Callable[[], str | None]] = {
        "no token": lambda: None,
        "another key": lambda: idp.identity_token(AUDIENCE, signing_key=new_rsa_key()),
        "expired": lambda: idp.identity_token(AUDIENCE, nbf=now - 7200, iat=now - 7200, exp=now - 3600),
        "another audience": lambda: idp.identity_token("api://someone-else"),
        "another identity": lambda: idp.identity_token(AUDIENCE, "0b0b0b0b-0000-4000-8000-000000000bad"),
        "another tenant": lambda: idp.identity_token(
            AUDIENCE, iss="https://sts.windows.net/11111111-0000-4000-8000-000000000000/"
        ),
        "alg none": lambda: idp.forge_none(**_identity_claims()),
        "hs256 with the public key": lambda: idp.forge_hs256_with_public_key(**_identity_claims()),
        "not a jwt": lambda: "x" * 40,
    }
    return makers[case]()


def _identity_claims() -> dict[str, Any]:
    return {"iss": f"https://sts.windows.net/{TENANT_ID}/", "aud": AUDIENCE, "sub": SYSTEM_IDENTITY}


@pytest.mark.parametrize(
    "case",
    [
        "no token",
        "another key",
        "expired",
        "another audience",
        "another identity",
        "another tenant",
        "alg none",
        "hs256 with the public key",
        "not a jwt",
    ],
)
def test_an_event_without_the_services_valid_token_is_refused_and_starts_nothing(
    host: DevHost, idp: FakeOpenIdProvider, case: str
) -> None:
    negotiated = negotiate(host)
    token = forged(idp, case)
    headers = signed_headers(access_key(host), "c-forged", **{"ce-type": "azure.webpubsub.user.utterance"})
    headers |= {"ce-userId": f"demo.{negotiated['conversation_id']}", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps({"id": "forged", "text": "transfer me"})
    answer = requests.post(host.url(EVENTS), data=body, headers=headers, timeout=10)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "invalid_token"
    time.sleep(0.3)
    turns = host.get(f"/api/conversations/{negotiated['conversation_id']}").json()["turns"]
    assert [turn["turn"] for turn in turns] == [0], "nothing started"

    handshake = {"WebHook-Request-Origin": f"127.0.0.1:{host.webpubsub_port}"}
    if token is not None:
        refused = requests.options(
            host.url(EVENTS), headers={**handshake, "Authorization": f"Bearer {token}"}, timeout=10
        )
        assert refused.status_code == 401, refused.text


def test_the_services_valid_token_needs_no_ce_signature(host: DevHost, idp: FakeOpenIdProvider) -> None:
    negotiated = negotiate(host)
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-hub": "voice",
        "ce-connectionId": "c-unsigned",
        "ce-type": "azure.webpubsub.user.dance",
        "ce-userId": f"demo.{negotiated['conversation_id']}",
        "Content-Type": "application/json",
        "Authorization": f"Bearer {idp.identity_token(AUDIENCE)}",
    }
    answer = requests.post(host.url(EVENTS), data=b"{}", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["code"] == "unknown_event", "taken, and answered as the client's mistake"
    origin = {"WebHook-Request-Origin": f"127.0.0.1:{host.webpubsub_port}"}
    assert requests.options(host.url(EVENTS), headers=origin, timeout=10).status_code == 200
