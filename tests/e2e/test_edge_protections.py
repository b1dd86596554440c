"""The edge, through a devhost: rate limits (429 + Retry-After, then recovery), CORS from the allow-list,
and audio links that work without headers only while signed for exactly that audio."""

from __future__ import annotations

import time

import pytest
import requests

from devhost.phone_sim import TwilioCall
from devhost.process import DevHost
from devhost.vonage_sim import VonageCall
from shared.security.roles import Scope
from tests.e2e.conftest import StartDevHost
from tests.e2e.credentials import key_header

APP = "https://app.example.com"


def new_key(host: DevHost) -> dict[str, str]:
    return key_header(host, scopes={Scope.CONVERSATIONS_READ})


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost(ALLOWED_ORIGINS=f"{APP},http://localhost:5173")


@pytest.fixture(scope="module")
def conversation(host: DevHost) -> dict[str, object]:
    started = host.post("/api/conversations", json={})
    assert started.status_code == 201, started.text
    return dict(started.json())


def test_a_burst_over_a_keys_limit_gets_429_with_retry_after_then_passes_again(
    start_devhost: StartDevHost,
) -> None:
    limited = start_devhost(RATE_LIMIT_PER_KEY="5 per 2 seconds", RATE_LIMIT_PER_IP="", RATE_LIMIT_PER_TENANT="")
    burst, other = new_key(limited), new_key(limited)
    path = "/api/conversations/00000000-0000-4000-8000-000000000000"  # a 404 costs as much as any answer

    answers = [limited.get(path, headers=burst) for _ in range(8)]

    assert [a.status_code for a in answers] == [404] * 5 + [429] * 3
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 4
    assert limited.get(path, headers=other).status_code == 404, "another key has its own limit"
    time.sleep(retry_after + 0.2)
    assert limited.get(path, headers=burst).status_code == 404, "recovered after Retry-After"


@pytest.fixture(scope="module")
def address_limited(start_devhost: StartDevHost) -> DevHost:
    """A devhost whose only limits are per address, small enough to spend in a burst: the API's, and the
    phone webhooks' own."""
    return start_devhost(
        RATE_LIMIT_PER_IP="4 per 2 seconds",
        RATE_LIMIT_PER_WEBHOOK_IP="3 per 2 seconds",
        RATE_LIMIT_PER_KEY="",
        RATE_LIMIT_PER_TENANT="",
    )


def test_a_burst_from_one_address_is_refused_before_any_credentials_are_looked_at(address_limited: DevHost) -> None:
    answers = [address_limited.get("/api/conversations/x", anonymous=True) for _ in range(6)]
    assert [a.status_code for a in answers] == [401] * 4 + [429] * 2
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert address_limited.get("/api/health").status_code == 200, "health is not behind the limits"


def test_a_flood_of_phone_webhooks_from_one_address_is_refused_before_any_signature_is_checked(
    address_limited: DevHost,
) -> None:
    twilio = TwilioCall(address_limited.base, "not-the-devhosts-token")
    vonage = VonageCall(address_limited.base, "not-the-devhosts-vonage-secret!!")
    incoming = "/api/voice/twilio/incoming"
    answers = [twilio.hang_up() for _ in range(3)]
    answers += [vonage.hang_up(), requests.post(address_limited.url("/api/voice/connect"), json={}, timeout=30)]
    answers.append(twilio.post(incoming, twilio.params()))
    assert [a.status_code for a in answers] == [403] * 3 + [429] * 3, "every provider counts as the one address"
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "rate_limited"
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 3
    time.sleep(retry_after + 0.2)
    assert twilio.hang_up().status_code == 403, "recovered after Retry-After: on to the signature check"


def test_a_preflight_from_an_allowed_origin_gets_the_cors_headers(host: DevHost) -> None:
    headers = {"Origin": APP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    response = requests.options(host.url("/api/conversations"), headers=headers, timeout=30)
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert "X-API-Key" in response.headers["Access-Control-Allow-Headers"]
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_preflight_from_an_unknown_origin_gets_none(host: DevHost) -> None:
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    response = requests.options(host.url("/api/conversations"), headers=headers, timeout=30)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cors_refused"
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]


def test_answers_to_an_allowed_origin_carry_cors_headers_errors_included(
    host: DevHost, conversation: dict[str, object]
) -> None:
    path = f"/api/conversations/{conversation['conversation_id']}"
    ok = host.get(path, headers={"Origin": APP, "X-API-Key": host.api_key})
    refused = host.get(path, headers={"Origin": APP}, anonymous=True)
    stranger = host.get(path, headers={"Origin": "https://evil.example", "X-API-Key": host.api_key})
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == APP
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == APP
    assert "Retry-After" in ok.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in stranger.headers
    assert "Origin" in ok.headers["Vary"]


def test_a_signed_audio_link_plays_without_headers_and_only_for_its_own_audio(
    host: DevHost, conversation: dict[str, object]
) -> None:
    reply = conversation["reply"]
    assert isinstance(reply, dict)
    url = str(reply["audio_url"])
    assert "?token=" in url
    played = requests.get(url, timeout=30)
    assert played.status_code == 200
    assert played.headers["Content-Type"].startswith("audio/wav")

    base, _, token = url.partition("?token=")
    tampered = requests.get(f"{base}?token={token[:-2]}xx", timeout=30)
    other_turn = requests.get(f"{base.removesuffix('/0')}/1?token={token}", timeout=30)
    sentence = requests.get(f"{base}/0?token={token}", timeout=30)
    unsigned = requests.get(base, timeout=30)
    for refused in (tampered, other_turn, sentence):
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "invalid_audio_url")
        assert token not in refused.text
    assert unsigned.status_code == 401
