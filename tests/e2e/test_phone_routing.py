"""Which tenant and agent answer a call: the phone numbers of the admin API, found before any tenant
is known; else the demo fallback `make dev` sets; else a polite "not in service" and no conversation."""

from __future__ import annotations

import pytest

from devhost.__main__ import TWILIO_TOKEN_FILE, VONAGE_SECRET_FILE
from devhost.phone_sim import TwilioCall
from devhost.process import DevHost
from devhost.vonage_sim import VonageCall
from tests.e2e.conftest import StartDevHost
from tests.e2e.credentials import key_header
from tests.e2e.test_agents_api import profile

ACME_LINE = "+14155550100"
ACME_VONAGE_LINE = "+14155550101"
NOBODYS_LINE = "+14155550199"
ACME_GREETING = "Acme front desk, how can I help?"
ACME_LISTENING = {"speech_model": "googlev2_telephony", "speech_timeout_seconds": 3, "barge_in": False}


def phone(host: DevHost, to: str) -> TwilioCall:
    return TwilioCall(host.base, (host.data_dir / TWILIO_TOKEN_FILE).read_text().strip(), to=to)


def vonage_phone(host: DevHost, to: str) -> VonageCall:
    """A Vonage call to `to`, written as Vonage writes numbers (no `+`)."""
    return VonageCall(host.base, (host.data_dir / VONAGE_SECRET_FILE).read_text().strip(), to=to.lstrip("+"))


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    return start_devhost()


@pytest.fixture(scope="module")
def acme(host: DevHost) -> dict[str, str]:
    key = key_header(host, "acme")
    made = host.post("/api/agents", json=profile("front-desk", ACME_GREETING, phone=ACME_LISTENING), headers=key)
    assert made.status_code == 201, made.text
    for number, provider in ((ACME_LINE, "twilio"), (ACME_VONAGE_LINE, "vonage")):
        held = host.post(
            "/api/phone-numbers", json={"number": number, "provider": provider, "agent": "front-desk"}, headers=key
        )
        assert held.status_code == 201, held.text
    return key


def test_a_call_to_a_tenants_number_reaches_its_agent_in_its_tenant(host: DevHost, acme: dict[str, str]) -> None:
    heard = phone(host, ACME_LINE).answer()

    played = heard.played[0]
    conversation_id = played.url.split("/api/conversations/")[1].split("/")[0]
    theirs = host.get(f"/api/conversations/{conversation_id}", headers=acme)
    assert theirs.status_code == 200, theirs.text
    assert (theirs.json()["agent"], theirs.json()["turns"][0]["reply"]["text"]) == ("front-desk", ACME_GREETING)
    assert host.get(f"/api/conversations/{conversation_id}").status_code == 404, "not the demo tenant's"
    listening = heard.twiml[-1]
    assert 'speechModel="googlev2_telephony"' in listening, "the agent's own speech model"
    assert 'speechTimeout="3"' in listening
    assert 'bargeIn="false"' in listening
    demo_listening = phone(host, NOBODYS_LINE).answer().twiml[-1]
    assert "speechModel" not in demo_listening
    assert 'speechTimeout="auto"' in demo_listening, "no model: Twilio's own choice and end-of-speech detection"


def test_a_number_kept_for_another_provider_is_not_answered_through_twilio(host: DevHost, acme: dict[str, str]) -> None:
    before = len(host.get("/api/conversations", headers=acme, params={"limit": 200}).json()["items"])
    heard = phone(host, ACME_VONAGE_LINE).answer()
    assert heard.hung_up
    assert heard.said == ["Sorry, this number is not in service."]
    assert len(host.get("/api/conversations", headers=acme, params={"limit": 200}).json()["items"]) == before


def test_a_vonage_call_to_a_tenants_vonage_number_reaches_its_agent_in_its_tenant(
    host: DevHost, acme: dict[str, str]
) -> None:
    heard = vonage_phone(host, ACME_VONAGE_LINE).answer()

    [played] = heard.played
    conversation_id = played.url.split("/api/conversations/")[1].split("/")[0]
    theirs = host.get(f"/api/conversations/{conversation_id}", headers=acme)
    assert theirs.status_code == 200, theirs.text
    assert (theirs.json()["agent"], theirs.json()["turns"][0]["reply"]["text"]) == ("front-desk", ACME_GREETING)
    assert host.get(f"/api/conversations/{conversation_id}").status_code == 404, "not the demo tenant's"


def test_a_number_kept_for_twilio_is_not_answered_through_vonage(host: DevHost, acme: dict[str, str]) -> None:
    before = len(host.get("/api/conversations", headers=acme, params={"limit": 200}).json()["items"])
    heard = vonage_phone(host, ACME_LINE).answer()
    assert heard.hung_up
    assert heard.said == ["Sorry, this number is not in service."]
    assert len(host.get("/api/conversations", headers=acme, params={"limit": 200}).json()["items"]) == before


def test_locally_a_number_nobody_holds_reaches_the_demo_agent(host: DevHost) -> None:
    heard = phone(host, NOBODYS_LINE).answer()
    played = heard.played[0]  # the demo greeting's first sentence
    conversation_id = played.url.split("/api/conversations/")[1].split("/")[0]
    assert host.get(f"/api/conversations/{conversation_id}").json()["agent"] == "demo"


def test_without_a_fallback_a_number_nobody_holds_is_not_in_service(start_devhost: StartDevHost) -> None:
    strict = start_devhost(PHONE_FALLBACK_AGENT="")
    for heard in (phone(strict, NOBODYS_LINE).answer(), vonage_phone(strict, NOBODYS_LINE).answer()):
        assert heard.hung_up
        assert heard.said == ["Sorry, this number is not in service."]
    assert strict.get("/api/conversations").json()["items"] == []
