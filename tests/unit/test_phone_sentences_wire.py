"""The markup that plays a reply sentence by sentence and lets the caller speak over it, per provider."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from shared.errors import BadRequest
from shared.models import PhoneListening
from shared.phone import twilio, vonage

NEXT = "https://app/api/voice/twilio/gather?turn=2&silences=0&wait=0"
REPLY = "https://app/api/voice/twilio/reply?turn=1&sentence=2&attempt=0&wait=0"


def test_twilio_nests_each_sentence_the_caller_may_cut_in_its_own_short_gather_then_redirects() -> None:
    sentences = [twilio.Sentence("https://app/a0.wav", f"{NEXT}&cut=1"), twilio.Sentence("https://app/a1.wav")]
    root = ElementTree.fromstring(twilio.play_then(sentences, REPLY, "hi-IN"))
    assert [verb.tag for verb in root] == ["Gather", "Play", "Redirect"]
    gather = root[0]
    assert gather.attrib["action"] == f"{NEXT}&cut=1"
    assert gather.attrib["timeout"] == str(twilio.CUT_IN_TIMEOUT_SECONDS) == "1"
    assert "actionOnEmptyResult" not in gather.attrib, "a silent caller falls through to the next sentence"
    assert (gather.attrib["input"], gather.attrib["language"]) == ("dtmf speech", "hi-IN")
    assert [inner.text for inner in gather] == ["https://app/a0.wav"]
    assert root[2].text == REPLY


def test_twilio_plays_the_last_sentence_inside_the_gather_that_listens_for_the_next_turn() -> None:
    sentences = [
        twilio.Sentence("https://app/a0.wav", f"{NEXT}&cut=1"),
        twilio.Sentence("https://app/a1.wav", f"{NEXT}&cut=2"),
    ]
    root = ElementTree.fromstring(twilio.listen(NEXT, "en-US", *sentences))
    assert [verb.tag for verb in root] == ["Gather", "Gather"]
    cut, listens = root
    assert cut.attrib["action"].endswith("&cut=1")
    assert listens.attrib["action"] == NEXT
    assert listens.attrib["actionOnEmptyResult"] == "true"
    assert "timeout" not in listens.attrib
    assert [inner.text for inner in listens] == ["https://app/a1.wav"]


def test_twilio_without_barge_in_plays_the_last_sentences_inside_a_gather_without_barge_in() -> None:
    quiet = PhoneListening(barge_in=False)
    sentences = [twilio.Sentence("https://app/a0.wav"), twilio.Sentence("https://app/a1.wav")]
    [gather] = list(ElementTree.fromstring(twilio.listen(NEXT, "en-US", *sentences, listening=quiet)))
    assert gather.attrib["bargeIn"] == "false"
    assert [inner.text for inner in gather] == ["https://app/a0.wav", "https://app/a1.wav"]
    so_far = ElementTree.fromstring(twilio.play_then(sentences, REPLY, "en-US", quiet))
    assert [verb.tag for verb in so_far] == ["Play", "Play", "Redirect"]


@pytest.mark.parametrize(("query", "cut"), [({"turn": "2"}, None), ({"turn": "2", "cut": "3"}, 3)])
def test_the_gather_url_says_how_much_of_the_reply_before_was_heard(query: dict[str, str], cut: int | None) -> None:
    assert twilio.our_query(twilio.GatherStep, query).cut == cut


@pytest.mark.parametrize("cut", ["0", "-1", "x", "1001"])
def test_a_cut_we_never_wrote_is_a_400(cut: str) -> None:
    with pytest.raises(BadRequest):
        twilio.our_query(twilio.GatherStep, {"turn": "2", "cut": cut})


def test_vonage_streams_a_sentence_the_caller_may_cut_then_a_short_input_that_comes_back() -> None:
    ncco = vonage.speak_on(["https://app/a0.wav"], "https://app/api/voice/vonage/reply?turn=1", "hi-IN", barge_in=True)
    stream, pause = ncco
    assert stream == {"action": "stream", "streamUrl": ["https://app/a0.wav"], "bargeIn": True}
    assert pause["action"] == "input"
    assert pause["type"] == ["speech"], "no keys: a key would hold the input open for the keypad timeout"
    assert pause["speech"]["startTimeout"] == vonage.CUT_IN_SECONDS == 1
    assert pause["speech"]["language"] == "hi-IN"
    assert pause["eventUrl"] == ["https://app/api/voice/vonage/reply?turn=1"]


def test_vonage_without_barge_in_streams_every_sentence_spoken_and_never_sets_barge_in() -> None:
    urls = ["https://app/a0.wav", "https://app/a1.wav"]
    ncco = vonage.speak_on(urls, "https://app/api/voice/vonage/reply?turn=1", "en-US", barge_in=False)
    assert [action["action"] for action in ncco] == ["stream", "stream", "input"]
    assert not any("bargeIn" in action for action in ncco)
    listening = vonage.listen("https://app/api/voice/vonage/input?turn=2", "en-US", urls, barge_in=False)
    assert not any("bargeIn" in action for action in listening)


@pytest.mark.parametrize(
    "query",
    [{"turn": "-1"}, {"turn": "1", "sentence": "x"}, {"turn": "1", "attempt": "-1"}, {"turn": "1", "cut": "1"}],
)
def test_a_vonage_reply_url_we_never_wrote_is_a_400(query: dict[str, str]) -> None:
    with pytest.raises(BadRequest):
        vonage.our_query(vonage.ReplyStep, query)
