"""Phone calls through Twilio's webhooks, placed by the simulator that signs and follows TwiML as Twilio does."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest
import requests

from devhost.__main__ import TWILIO_TOKEN_FILE
from devhost.management import PREFIX
from devhost.phone_sim import Heard, TwilioCall
from devhost.process import DevHost
from functions.phone_calls import SORRY
from shared.speech.audio import decode_wav
from tests.e2e.conftest import StartDevHost
from tests.e2e.transcripts import QUESTIONS, conversation_count, ended, transcript
from tests.fakes.openai_server import Answer, FakeOpenAIServer
from tests.fakes.sarvam_server import FakeSarvamServer

AUTH_TOKEN = "local-twilio-token-for-the-e2e-tests"
CONVERSATION_AUDIO = re.compile(r"/api/conversations/([0-9a-f-]{36})/audio/([0-9]+)(?:/([0-9]+))?$")


@pytest.fixture(scope="module")
def host(start_devhost: StartDevHost) -> DevHost:
    """A devhost with the local Twilio auth token it makes itself, as `make dev` does."""
    return start_devhost()


def local_token(host: DevHost) -> str:
    return (host.data_dir / TWILIO_TOKEN_FILE).read_text().strip()


def call(host: DevHost) -> TwilioCall:
    return TwilioCall(host.base, local_token(host))


def spoken(heard: Heard) -> tuple[str, int]:
    """The conversation and turn whose audio the caller heard (the whole reply, or its sentences in
    order), checking it was real audio at the phone network's rate."""
    assert heard.played, heard.twiml
    sources, sentences, seconds = set(), [], 0.0
    for played in heard.played:
        assert played.status == 200, played.audio[:300]
        audio = decode_wav(played.audio)
        assert audio.rate == 8000, "phone audio is served at the phone network's rate"
        seconds += audio.duration_seconds
        match = CONVERSATION_AUDIO.search(urlsplit(played.url).path)
        assert match is not None, played.url
        sources.add((match.group(1), int(match.group(2))))
        sentences.append(None if match.group(3) is None else int(match.group(3)))
    assert seconds > 0.5
    assert sentences in ([None], list(range(len(sentences)))), "the whole reply, or every sentence in order"
    [source] = sources
    return source


def test_a_whole_call_greets_answers_three_questions_and_ends_when_the_caller_hangs_up(host: DevHost) -> None:
    phone = call(host)
    greeting = phone.answer()
    conversation_id, turn = spoken(greeting)
    assert turn == 0
    assert greeting.listening is not None
    assert urlsplit(greeting.listening).query == "turn=1&silences=0&wait=0"
    assert 'language="en-US"' in greeting.twiml[-1]
    assert 'speechTimeout="auto"' in greeting.twiml[-1]

    hours = phone.say("what are your opening hours")
    assert spoken(hours) == (conversation_id, 1)
    delivery = phone.say("how much does delivery cost")
    assert spoken(delivery) == (conversation_id, 2)
    assert delivery.listening is not None
    assert "turn=3" in delivery.listening
    menu = phone.say("what is on the menu")
    assert spoken(menu) == (conversation_id, 3)
    assert menu.listening is not None
    assert "turn=4" in menu.listening

    during = transcript(host, conversation_id)
    assert during["status"] == "active"
    assert [t["text"] for t in during["turns"]] == [None, *QUESTIONS]
    assert "8 am to 10 pm" in during["turns"][1]["reply"]["text"]
    assert "40 rupees" in during["turns"][2]["reply"]["text"]
    assert "masala chai" in during["turns"][3]["reply"]["text"]
    assert [c["title"] for c in during["turns"][1]["citations"]] == ["Opening hours"], "answered from its documents"

    assert phone.hang_up().status_code == 204
    final = ended(host, conversation_id)
    assert final["outcome"] == "ended_by_client"
    assert final["call_duration_seconds"] == 42
    assert [t["text"] for t in final["turns"]] == [None, *QUESTIONS], "every turn, once, in Postgres"
    assert phone.hang_up().status_code == 204, "a repeated status callback is no error"


def test_phone_links_serve_8_khz_the_apis_own_links_16_khz_and_other_rates_are_refused(host: DevHost) -> None:
    phone = call(host)
    greeting = phone.answer()
    conversation_id, _ = spoken(greeting)
    phone_link = greeting.played[0].url
    assert "rate=8000" in phone_link
    api_link = transcript(host, conversation_id)["turns"][0]["reply"]["audio_url"]
    assert "rate=" not in api_link
    phone_audio = requests.get(phone_link, timeout=30)
    api_audio = requests.get(api_link, timeout=30)
    assert decode_wav(api_audio.content).rate == 16000
    assert len(phone_audio.content) < len(api_audio.content) * 0.6, "8 kHz is about half the bytes"
    for rate in ("44100", "8001", "x", "08000"):
        refused = requests.get(phone_link.replace("rate=8000", f"rate={rate}"), timeout=30)
        assert refused.status_code == 400, (rate, refused.text)
        assert refused.json()["error"]["code"] == "unsupported_rate"
    phone.hang_up()


def test_a_call_that_ends_busy_unanswered_failed_or_canceled_keeps_that_outcome_and_its_duration(
    host: DevHost,
) -> None:
    expected = {"busy": "busy", "no-answer": "no_answer", "failed": "call_failed", "canceled": "canceled"}
    for status, outcome in expected.items():
        phone = call(host)
        conversation_id, _ = spoken(phone.answer())
        assert phone.hang_up(status, duration="7").status_code == 204
        final = ended(host, conversation_id)
        assert (final["outcome"], final["call_duration_seconds"]) == (outcome, 7), status


def test_an_agent_that_ended_the_call_keeps_its_outcome_and_gets_the_duration(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    assert phone.say("goodbye").hung_up
    ended(host, conversation_id)
    assert phone.hang_up(duration="13").status_code == 204
    final = transcript(host, conversation_id)
    assert (final["outcome"], final["call_duration_seconds"]) == ("completed", 13)


def test_a_retried_webhook_gets_the_same_answer_and_makes_no_second_turn_or_call(host: DevHost) -> None:
    before = conversation_count(host)
    phone = call(host)
    first = phone.answer()
    again = phone.answer()
    assert spoken(first) == spoken(again)
    conversation_id, _ = spoken(first)
    assert conversation_count(host) == before + 1

    gather = phone.listening
    assert gather is not None
    answered = phone.say("where are you located")
    phone.listening = gather
    retried = phone.say("where are you located")
    assert spoken(answered) == spoken(retried) == (conversation_id, 1)
    assert answered.listening == retried.listening
    phone.listening = gather.replace("wait=0", "wait=1")  # a filler's redirect from TwiML before the reply route
    waited = phone.say("")
    assert spoken(waited) == (conversation_id, 1)
    turns = transcript(host, conversation_id)["turns"]
    assert [t["text"] for t in turns] == [None, "where are you located"]
    phone.hang_up()


def test_the_agent_ending_the_call_hangs_up_after_its_goodbye(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    goodbye = phone.say("goodbye")
    assert spoken(goodbye) == (conversation_id, 1)
    assert goodbye.hung_up
    assert goodbye.listening is None
    final = ended(host, conversation_id)
    assert final["outcome"] == "completed"


def test_asking_for_a_person_dials_the_agents_transfer_number(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    transfer = phone.say("transfer me to a real person")
    assert spoken(transfer) == (conversation_id, 1)
    assert transfer.dialled == "+918045550100"
    final = ended(host, conversation_id)
    assert final["outcome"] == "transferred"


def test_a_silent_caller_is_prompted_again_then_the_call_ends(host: DevHost) -> None:
    phone = call(host)
    conversation_id, _ = spoken(phone.answer())
    prompted = phone.say("")
    assert prompted.played == []
    assert prompted.said == ["Are you still there? You can ask me about our opening hours, menu or delivery."]
    assert prompted.listening is not None
    assert "turn=1&silences=1" in prompted.listening
    phone.say("")
    last = phone.say("")
    assert last.hung_up
    assert last.said == []
    final = ended(host, conversation_id)
    assert [t["kind"] for t in final["turns"]] == ["greeting"]
    assert final["outcome"] == "no_response", "the caller kept silent: not an ending of theirs"


def test_a_forged_or_missing_signature_is_refused_and_starts_nothing(host: DevHost) -> None:
    before = conversation_count(host)
    phone = call(host)
    forged = phone.post("/api/voice/twilio/incoming", phone.params(), signature="0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    unsigned = requests.post(host.url("/api/voice/twilio/incoming"), data=phone.params(), timeout=30)
    other_token = TwilioCall(host.base, "not-our-token")
    wrong_key = other_token.post("/api/voice/twilio/incoming", other_token.params())
    for refused in (forged, unsigned, wrong_key):
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "invalid_signature"
    assert conversation_count(host) == before
    log = host.log_tail(2000)
    assert log.count(local_token(host)) == 1, "printed once, when made, and never logged"
    assert "refused a Twilio webhook" in log


def test_the_local_auth_token_is_kept_for_its_owner_only(host: DevHost) -> None:
    assert len(local_token(host)) >= 32
    assert (host.data_dir / TWILIO_TOKEN_FILE).stat().st_mode & 0o777 == 0o600


def test_malformed_webhooks_are_400s_never_500s(host: DevHost) -> None:
    phone = call(host)
    not_a_form = requests.post(
        host.url("/api/voice/twilio/incoming"),
        data=b"CallSid",
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"},
        timeout=30,
    )
    assert not_a_form.status_code == 400, not_a_form.text
    no_call = phone.post("/api/voice/twilio/incoming", {"To": phone.to})
    assert no_call.status_code == 400, no_call.text
    phone.answer()
    for route in ("incoming?wait=99", "incoming?turn=1"):
        response = phone.post(f"/api/voice/twilio/{route}", phone.params())
        assert response.status_code == 400, (route, response.text)
    for query in ("", "?turn=0", "?turn=x", "?turn=1&silences=-1", "?turn=1&extra=1"):
        response = phone.post(f"/api/voice/twilio/gather{query}", phone.params(SpeechResult="hello"))
        assert response.status_code == 400, (query, response.text)
        assert response.json()["error"]["code"] == "malformed_query"
    for query in ("", "?turn=-1", "?turn=1&sentence=-1", "?turn=1&attempt=x", "?turn=1&wait=5", "?turn=1&extra=1"):
        response = phone.post(f"/api/voice/twilio/reply{query}", phone.params())
        assert response.status_code == 400, (query, response.text)
        assert response.json()["error"]["code"] == "malformed_query"
    for duration in ("-1", "1.5", "x", "99999999999", "٣"):
        response = phone.hang_up(duration=duration)
        assert response.status_code == 400, (duration, response.text)
    json_body = requests.post(host.url("/api/voice/twilio/status"), json=phone.params(), timeout=30)
    assert json_body.status_code == 415, json_body.text
    phone.hang_up()


def test_without_an_auth_token_the_twilio_routes_answer_503(start_devhost: StartDevHost) -> None:
    unconfigured = start_devhost(TWILIO_AUTH_TOKEN="")
    phone = TwilioCall(unconfigured.base, AUTH_TOKEN)
    for route in ("incoming", "gather?turn=1", "reply?turn=1", "status"):
        response = phone.post(f"/api/voice/twilio/{route}", phone.params())
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "twilio_not_configured"


def test_late_replies_get_fillers_and_redirects_for_the_same_turn_and_a_hang_up_mid_turn_keeps_that_turn(
    start_devhost: StartDevHost,
) -> None:
    slow = start_devhost(
        TWILIO_AUTH_TOKEN=AUTH_TOKEN, PHONE_REPLY_DEADLINE_SECONDS="2", DEVHOST_SLOW_ACTIVITIES="answer_turn=4.5"
    )  # two fillers at least, and room for two more on a loaded machine before the call gives up
    phone = TwilioCall(slow.base, AUTH_TOKEN)
    greeting = phone.answer()
    assert len(greeting.said) >= 2, "the greeting waits through fillers too"
    assert set(greeting.said) == {"One moment, please."}
    assert "/api/voice/twilio/reply?turn=0&amp;sentence=0&amp;attempt=0&amp;wait=2<" in greeting.twiml[1], (
        "each filler counts, so a greeting that never comes ends the call"
    )
    conversation_id, _ = spoken(greeting)
    started = time.perf_counter()
    late = phone.say("what are your opening hours")
    assert len(late.said) >= 2, "fillers while the reply is late"
    assert set(late.said) == {"One moment, please."}
    assert late.redirects >= len(late.said), "each filler redirects to the same sentence, then the reply plays"
    fillers = [twiml for twiml in late.twiml if "<Say" in twiml]
    assert len(fillers) == len(late.said)
    for count, filler in enumerate(fillers, start=1):
        assert f"/api/voice/twilio/reply?turn=1&amp;sentence=0&amp;attempt=0&amp;wait={count}<" in filler, filler
    assert spoken(late) == (conversation_id, 1)
    assert time.perf_counter() - started > 4.5
    assert [t["text"] for t in transcript(slow, conversation_id)["turns"]] == [None, "what are your opening hours"]

    assert phone.listening is not None
    mid_turn = phone.post(phone.listening, phone.params(SpeechResult="how much does delivery cost", Confidence="0.9"))
    assert mid_turn.status_code == 200, mid_turn.text
    assert "One moment, please." in mid_turn.text, "the caller hears a filler while the turn goes on"
    assert phone.hang_up().status_code == 204, "the caller hangs up mid-turn"
    final = ended(slow, conversation_id)
    assert final["outcome"] == "ended_by_client"
    assert [t["text"] for t in final["turns"]] == [
        None,
        "what are your opening hours",
        "how much does delivery cost",
    ], "the turn in flight when the caller hung up is kept, once"


def test_behind_a_proxy_twilio_signs_the_public_url_and_our_twiml_points_there(start_devhost: StartDevHost) -> None:
    public = "https://voice.example.test"
    proxied = start_devhost(TWILIO_AUTH_TOKEN=AUTH_TOKEN, PUBLIC_BASE_URL=public)
    phone = TwilioCall(proxied.base, AUTH_TOKEN, public_url=public)
    greeting = phone.answer()
    conversation_id, _ = spoken(greeting)
    assert greeting.listening is not None
    assert greeting.listening.startswith(f"{public}/api/voice/twilio/gather?")
    assert greeting.played[0].url.startswith(f"{public}/api/conversations/{conversation_id}/audio/0/0?token=")
    assert spoken(phone.say("what are your opening hours")) == (conversation_id, 1)
    signed_for_the_inside = TwilioCall(proxied.base, AUTH_TOKEN)
    refused = signed_for_the_inside.post("/api/voice/twilio/incoming", signed_for_the_inside.params())
    assert refused.status_code == 403, refused.text


THREE_SENTENCES = json.dumps(
    {
        "text": "We are open from 8 am to 10 pm on weekdays. On Sundays we open at 9 am. "
        "We are closed on public holidays.",
        "intent": "question",
        "cites": [],
    }
)


UNKNOWN_INTENT = json.dumps(
    {
        "text": "On Sundays we open at 9 am and close at 6 pm. We are closed on public holidays.",
        "intent": "no_such_intent",
        "cites": [],
    }
)
"""A reply streamed sentence by sentence, then refused (the agent has no such intent): the stream restarts."""


@pytest.fixture(scope="module")
def streaming(start_devhost: StartDevHost) -> Iterator[tuple[DevHost, FakeOpenAIServer]]:
    """A devhost whose agent's model streams its replies (at a language model's pace) and whose speech
    takes a speech API's time, so a reply's sentences come one by one."""
    with (
        FakeOpenAIServer(THREE_SENTENCES, first_token_seconds=0.2, tokens_per_second=12) as model,
        FakeSarvamServer(tts_seconds_per_sentence=0.2) as sarvam,
    ):
        host = start_devhost(
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            OPENAI_BASE_URL=f"{model.url}/v1",
            OPENAI_MODEL="fake-model",
            LLM_MAX_RETRIES="0",
            SARVAM_API_KEY=sarvam.api_key,
            SARVAM_BASE_URL=sarvam.url,
            PHONE_REPLY_DEADLINE_SECONDS="8",
        )
        yield host, model


def test_each_sentence_plays_as_it_is_spoken_in_order_a_retried_redirect_replays_it_a_restart_starts_over(
    streaming: tuple[DevHost, FakeOpenAIServer],
) -> None:
    host, model = streaming
    phone = TwilioCall(host.base, AUTH_TOKEN)
    greeting = phone.answer()
    conversation_id, _ = spoken(greeting)
    assert [urlsplit(p.url).path.rsplit("/", 2)[1:] for p in greeting.played] == [["0", "0"], ["0", "1"]], (
        "the greeting's two sentences play one by one, as a reply's do"
    )
    hours = phone.say("what are your opening hours")
    assert spoken(hours) == (conversation_id, 1)
    assert [urlsplit(p.url).path.rsplit("/", 1)[1] for p in hours.played] == ["0", "1", "2"]
    assert hours.redirects >= 1, "the later sentences came by redirect, after the first was playing"
    first = ElementTree.fromstring(hours.twiml[0])
    assert [verb.tag for verb in first] == ["Gather", "Redirect"], hours.twiml[0]
    assert [verb.tag for verb in first[0]] == ["Play"], "the first sentence, which the caller may speak over"
    assert first[1].text is not None
    assert urlsplit(first[1].text).query == "turn=1&sentence=1&attempt=0&wait=0"
    assert hours.listening is not None
    assert "turn=2" in hours.listening

    retried = phone.follow(phone.post(first[1].text, phone.params()))
    assert [urlsplit(p.url).path for p in retried.played] == [urlsplit(p.url).path for p in hours.played[1:]]
    assert retried.listening == hours.listening
    turns = transcript(host, conversation_id)["turns"]
    assert [t["text"] for t in turns] == [None, "what are your opening hours"], "a retry is no second turn"
    assert turns[1]["reply"]["text"] == json.loads(THREE_SENTENCES)["text"]

    model.script(Answer(UNKNOWN_INTENT))
    replaced = phone.say("and on sundays")
    sentences = [int(urlsplit(p.url).path.rsplit("/", 1)[1]) for p in replaced.played]
    assert sentences[0] == 0
    assert len(sentences) >= 2
    restart = len(sentences) - 1 - sentences[::-1].index(0)
    assert restart > 0, (sentences, "the fallback line that replaced the streamed reply plays from its start")
    assert sentences[restart:] == list(range(len(sentences) - restart))
    assert all("/audio/2/" in p.url for p in replaced.played)
    final = transcript(host, conversation_id)["turns"][2]["reply"]["text"]
    assert final != json.loads(UNKNOWN_INTENT)["text"]
    assert replaced.listening is not None
    assert "turn=3" in replaced.listening
    phone.hang_up()


STALLING = json.dumps(
    {
        "text": "Let me see. " + "We have a great many things to tell you about our menu and delivery " * 12 + "today.",
        "intent": "question",
        "cites": [],
    }
)
"""A reply whose first sentence is out at once and whose second takes the model many seconds."""


def test_an_orchestration_that_dies_mid_reply_is_apologised_for_at_once_not_after_fillers(
    streaming: tuple[DevHost, FakeOpenAIServer],
) -> None:
    host, model = streaming
    phone = TwilioCall(host.base, AUTH_TOKEN)
    conversation_id, _ = spoken(phone.answer())
    assert phone.listening is not None
    model.script(Answer(STALLING))
    first = ElementTree.fromstring(phone.post(phone.listening, phone.params(SpeechResult="what is on the menu")).text)
    assert [verb.tag for verb in first] == ["Gather", "Redirect"], "the first sentence plays, the rest is awaited"
    assert first[1].text is not None
    terminated = host.post(f"{PREFIX}/instances/{conversation_id}/terminate?reason=test")
    assert terminated.status_code == 202, terminated.text
    started = time.perf_counter()
    rest = phone.follow(phone.post(first[1].text, phone.params()))
    waited = time.perf_counter() - started
    assert rest.said == [SORRY], rest.twiml
    assert rest.hung_up
    assert rest.redirects == 0, "no filler while the call has nobody left to answer it"
    assert waited < 6, f"noticed in {waited:.1f} s (the instance is checked every 2 s), not at the 8 s deadline"
    assert ended(host, conversation_id)["outcome"] == "terminated"


def test_placing_a_call_without_twilio_credentials_answers_503(host: DevHost) -> None:
    """This devhost has TWILIO_AUTH_TOKEN (its own) but no TWILIO_ACCOUNT_SID: it takes calls, places none."""
    placed = host.post("/api/calls", json={"to": "+14155550123", "agent": "demo", "provider": "twilio"})
    assert placed.status_code == 503, placed.text
    assert placed.json()["error"]["code"] == "twilio_not_configured"
