"""Phone replies sentence by sentence, and callers who speak over them (barge-in), on Twilio and Vonage.

One devhost takes both providers' calls; its agent's model streams each reply at a language model's pace
and its speech takes a speech API's time, so a reply's sentences come one by one. The simulators follow
the TwiML and NCCO as the providers do, and speak over the sentence a test names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import pytest

from devhost.phone_sim import TwilioCall
from devhost.process import DevHost
from devhost.vonage_sim import VonageCall
from tests.e2e.conftest import StartDevHost
from tests.e2e.polling import wait_until
from tests.e2e.test_agents_api import profile
from tests.e2e.transcripts import transcript
from tests.fakes.openai_server import Answer, FakeOpenAIServer
from tests.fakes.sarvam_server import FakeSarvamServer

AUTH_TOKEN = "local-twilio-token-for-the-barge-in-tests"
SECRET = "local-vonage-signature-secret-for-the-barge-in-tests"
SENTENCES = [
    "We are open from 8 am to 10 pm on weekdays.",
    "On Sundays we open at 9 am.",
    "We are closed on public holidays.",
]
THREE_SENTENCES = json.dumps({"text": " ".join(SENTENCES), "intent": "question", "cites": []})
STALLING = json.dumps(
    {
        "text": "Let me see. " + "We have a great many things to tell you about our menu and delivery " * 12 + "today.",
        "intent": "question",
        "cites": [],
    }
)
"""A reply whose first sentence is out at once and whose second takes the model many seconds."""
AUDIO = re.compile(r"/api/conversations/([0-9a-f-]{36})/audio/([0-9]+)/([0-9]+)$")


@pytest.fixture(scope="module")
def streaming(start_devhost: StartDevHost) -> Iterator[tuple[DevHost, FakeOpenAIServer]]:
    with (
        FakeOpenAIServer(THREE_SENTENCES, first_token_seconds=0.2, tokens_per_second=12) as model,
        FakeSarvamServer(tts_seconds_per_sentence=0.2) as sarvam,
    ):
        host = start_devhost(
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            VONAGE_SIGNATURE_SECRET=SECRET,
            OPENAI_BASE_URL=f"{model.url}/v1",
            OPENAI_MODEL="fake-model",
            LLM_MAX_RETRIES="0",
            SARVAM_API_KEY=sarvam.api_key,
            SARVAM_BASE_URL=sarvam.url,
            PHONE_REPLY_DEADLINE_SECONDS="8",
        )
        warm_up = TwilioCall(host.base, AUTH_TOKEN)  # the worker's first model call loads the SDKs
        warm_up.answer()
        warm_up.say("hello")
        warm_up.hang_up()
        yield host, model


def sentences_of(played_urls: list[str]) -> list[tuple[int, int]]:
    """(turn, sentence) of each audio the caller heard."""
    found = [AUDIO.search(urlsplit(url).path) for url in played_urls]
    assert all(found), played_urls
    return [(int(match.group(2)), int(match.group(3))) for match in found if match]


def conversation_of(played_urls: list[str]) -> str:
    """The one conversation whose audio the caller heard."""
    [conversation_id] = {urlsplit(url).path.split("/")[3] for url in played_urls}
    return conversation_id


def stored(host: DevHost, conversation_id: str, turns: int) -> None:
    """Wait until the conversation has `turns` turns stored: a reply written before the caller cuts in,
    the usual case on the phone, where sentences play far slower than they are written."""
    wait_until(lambda: len(transcript(host, conversation_id)["turns"]), lambda count: count >= turns)


def replies(host: DevHost, conversation_id: str) -> list[tuple[str | None, str]]:
    return [(t["text"], t["reply"]["text"]) for t in transcript(host, conversation_id)["turns"]]


def test_vonage_plays_the_first_sentence_before_the_last_is_spoken_then_the_rest_once_each(
    streaming: tuple[DevHost, FakeOpenAIServer],
) -> None:
    host, _ = streaming
    phone = VonageCall(host.base, SECRET)
    greeting = phone.answer()
    conversation_id = conversation_of([p.url for p in greeting.played])
    assert sentences_of([p.url for p in greeting.played]) == [(0, 0), (0, 1)], "the greeting plays as replies do"

    first = phone.say_once("what are your opening hours")
    assert first.status_code == 200, first.text
    ncco = first.json()
    assert [action["action"] for action in ncco] == ["stream", "input"], ncco
    stream, pause = ncco
    assert stream["bargeIn"] is True
    assert sentences_of(stream["streamUrl"]) == [(1, 0)]
    assert host.get(f"/api/conversations/{conversation_id}/audio/1/2").status_code == 404, (
        "the caller hears the first sentence while the last is still being written and spoken"
    )
    assert pause["speech"]["startTimeout"] == 1
    assert urlsplit(pause["eventUrl"][0]).path == "/api/voice/vonage/reply"
    assert parse_qs(urlsplit(pause["eventUrl"][0]).query) == {
        "turn": ["1"],
        "sentence": ["1"],
        "attempt": ["0"],
        "wait": ["0"],
    }

    rest = phone.follow(first)
    assert sentences_of([p.url for p in rest.played]) == [(1, 0), (1, 1), (1, 2)], "each sentence once, in order"
    assert all(p.status == 200 for p in rest.played)
    assert rest.pauses >= 2, "a pause after each sentence but the last (and after it, while the turn is stored)"
    assert rest.listening is not None
    assert parse_qs(urlsplit(rest.listening).query)["turn"] == ["2"]

    retried = phone.follow(phone.post(pause["eventUrl"][0], phone.fields(speech={"timeout_reason": "start_timeout"})))
    assert sentences_of([p.url for p in retried.played]) == [(1, 1), (1, 2)], "a retried pause plays the same sentence"
    assert replies(host, conversation_id)[1:] == [("what are your opening hours", " ".join(SENTENCES))]
    phone.hang_up()


def test_vonage_caller_speaking_over_a_later_sentence_of_a_stored_reply_is_the_next_turn_once_it_keeps_what_was_heard(
    streaming: tuple[DevHost, FakeOpenAIServer],
) -> None:
    host, _ = streaming
    phone = VonageCall(host.base, SECRET)
    greeting = phone.answer()
    conversation_id = conversation_of([p.url for p in greeting.played])

    first = phone.say_once("what are your opening hours")
    stored(host, conversation_id, 2)
    phone.speak_over(1, "and on sundays")
    cut = phone.follow(first)
    heard = sentences_of([p.url for p in cut.played])
    assert heard[:2] == [(1, 0), (1, 1)], "the caller spoke as the second sentence started"
    assert (1, 2) not in heard, "the rest of the interrupted reply is never played"
    assert [sentence for turn, sentence in heard if turn == 2] == [0, 1, 2], "the answer to what they said"
    assert cut.listening is not None
    assert parse_qs(urlsplit(cut.listening).query)["turn"] == ["3"]
    assert replies(host, conversation_id)[1:] == [
        ("what are your opening hours", " ".join(SENTENCES[:2])),
        ("and on sundays", " ".join(SENTENCES)),
    ], "the interrupted turn keeps the two sentences heard; the next turn is taken once"

    [spoken_over] = [ncco for ncco in cut.ncco if sentences_of(ncco[0].get("streamUrl", [])) == [(1, 1)]]
    [listening] = spoken_over[1]["eventUrl"]
    phone.listening = listening
    again = phone.say_once("and on sundays")
    assert again.status_code == 200, again.text
    assert sentences_of(again.json()[0]["streamUrl"]) == [(2, 0)], "a retried cut-in is the same turn"
    assert replies(host, conversation_id)[1:] == [
        ("what are your opening hours", " ".join(SENTENCES[:2])),
        ("and on sundays", " ".join(SENTENCES)),
    ], "no second turn, and the first cut stands"
    phone.hang_up()


def test_twilio_caller_speaking_over_a_later_sentence_of_a_stored_reply_is_the_next_turn_once_it_keeps_what_was_heard(
    streaming: tuple[DevHost, FakeOpenAIServer],
) -> None:
    host, _ = streaming
    phone = TwilioCall(host.base, AUTH_TOKEN)
    greeting = phone.answer()
    conversation_id = conversation_of([p.url for p in greeting.played])

    assert phone.listening is not None
    first = phone.post(phone.listening, phone.params(SpeechResult="what are your opening hours", Confidence="0.9"))
    stored(host, conversation_id, 2)
    phone.speak_over(1, "and on sundays")
    cut = phone.follow(first)
    heard = sentences_of([p.url for p in cut.played])
    assert heard[:2] == [(1, 0), (1, 1)]
    assert (1, 2) not in heard, "the rest of the interrupted reply is never played"
    assert [sentence for turn, sentence in heard if turn == 2] == [0, 1, 2]
    assert cut.listening is not None
    assert parse_qs(urlsplit(cut.listening).query)["turn"] == ["3"]
    assert replies(host, conversation_id)[1:] == [
        ("what are your opening hours", " ".join(SENTENCES[:2])),
        ("and on sundays", " ".join(SENTENCES)),
    ]

    gathers = [gather for twiml in cut.twiml for gather in ElementTree.fromstring(twiml).iter("Gather")]
    [spoken_over] = [g for g in gathers if sentences_of([p.text or "" for p in g.iter("Play")]) == [(1, 1)]]
    assert parse_qs(urlsplit(spoken_over.attrib["action"]).query)["cut"] == ["2"]
    assert spoken_over.attrib["timeout"] == "1"
    assert "actionOnEmptyResult" not in spoken_over.attrib, "a silent caller hears the next sentence"
    again = phone.post(spoken_over.attrib["action"], phone.params(SpeechResult="and on sundays", Confidence="0.9"))
    assert again.status_code == 200, again.text
    [first_play] = list(ElementTree.fromstring(again.text).iter("Play"))[:1]
    assert sentences_of([first_play.text or ""]) == [(2, 0)], "a retried cut-in is the same turn"
    assert len(replies(host, conversation_id)) == 3, "no second turn"
    phone.hang_up()


def test_twilio_caller_speaking_over_a_reply_still_being_written_stops_it_where_they_cut_in(
    streaming: tuple[DevHost, FakeOpenAIServer],
) -> None:
    host, model = streaming
    phone = TwilioCall(host.base, AUTH_TOKEN)
    greeting = phone.answer()
    conversation_id = conversation_of([p.url for p in greeting.played])

    model.script(Answer(STALLING))
    phone.speak_over(0, "what are your opening hours")
    cut = phone.say("what is on the menu")
    assert sentences_of([p.url for p in cut.played])[0] == (1, 0)
    assert [turn for turn, _ in sentences_of([p.url for p in cut.played])][1:] == [2, 2, 2]
    assert replies(host, conversation_id)[1:] == [
        ("what is on the menu", "Let me see."),
        ("what are your opening hours", " ".join(SENTENCES)),
    ], "the model stopped writing the reply the caller cut short; the turn keeps the sentence heard"
    phone.hang_up()


def test_an_agent_without_barge_in_plays_every_sentence_uninterrupted_on_both_providers(
    streaming: tuple[DevHost, FakeOpenAIServer],
) -> None:
    host, _ = streaming
    quiet = profile("no-barge-in", "Hello. Please listen to the end.", phone={"barge_in": False})
    created = host.post("/api/agents", json=quiet)
    assert created.status_code == 201, created.text
    for number, provider in (("+14155550181", "twilio"), ("+14155550182", "vonage")):
        held = host.post("/api/phone-numbers", json={"number": number, "provider": provider, "agent": "no-barge-in"})
        assert held.status_code == 201, held.text

    twilio = TwilioCall(host.base, AUTH_TOKEN, to="+14155550181")
    twilio.answer()
    twilio.speak_over(1, "stop")
    heard = twilio.say("what are your opening hours")
    assert sentences_of([p.url for p in heard.played]) == [(1, 0), (1, 1), (1, 2)], "nothing cut short"
    assert all(
        g.attrib.get("bargeIn") == "false" for t in heard.twiml for g in ElementTree.fromstring(t).iter("Gather")
    )

    vonage = VonageCall(host.base, SECRET, to="14155550182")
    vonage.answer()
    vonage.speak_over(1, "stop")  # Vonage does not listen through the stream: the pause after it hears "stop"
    listened = vonage.say("what are your opening hours")
    assert sentences_of([p.url for p in listened.played])[:3] == [(1, 0), (1, 1), (1, 2)], "nothing cut short"
    assert not any(action.get("bargeIn") for ncco in listened.ncco for action in ncco)
    conversation_id = conversation_of([p.url for p in listened.played])
    stored(host, conversation_id, 2)
    assert replies(host, conversation_id)[1:] == [("what are your opening hours", " ".join(SENTENCES))], (
        "words in the pause after a sentence neither cut the reply nor make a turn"
    )
    twilio.hang_up()
    vonage.hang_up()
