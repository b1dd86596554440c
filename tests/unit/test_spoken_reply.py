"""A reply spoken sentence by sentence while it is written: cut points, order, first audio, restarts."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from shared.speech.audio import Audio
from shared.speech.ports import Spoken
from shared.spoken_reply import SpokenReply, joined
from shared.storage.reply_stream import ReplyStream, read_stream, stream_key

RATE = 16000


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class SlowFirstVoice:
    """Speaks a sentence as 10 ms of audio per character; the first sentence takes longest to speak."""

    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.first_may_finish = threading.Event()

    def __call__(self, text: str) -> Spoken:
        if not self.spoken:
            self.spoken.append(text)
            self.first_may_finish.wait(5)
        else:
            self.spoken.append(text)
        return Spoken(Audio(np.zeros(len(text) * RATE // 100, dtype=np.int16), RATE), "test-voice")


def reply_for(client: redis.Redis, voice: SlowFirstVoice) -> tuple[SpokenReply, str, list[str]]:
    prefix, conversation_id = f"spoken-{uuid.uuid4().hex[:8]}:", str(uuid.uuid4())
    stream = ReplyStream(client, prefix, conversation_id, 1)
    started: list[str] = []

    def announce_next_event() -> None:
        started.append("next")
        stream.start("utterance-2")

    reply = SpokenReply(
        speak=voice, store=lambda index, audio: f"blob-{index}", stream=stream, before_first_audio=announce_next_event
    )
    return reply, stream_key(prefix, conversation_id, 1), started


def sentences_announced(client: redis.Redis, key: str) -> list[str]:
    return [data["text"] for event, data in read_stream(client, key) if event == "sentence"]


def test_a_sentence_is_spoken_once_it_is_complete_and_not_before(redis_client: redis.Redis) -> None:
    voice = SlowFirstVoice()
    voice.first_may_finish.set()
    reply, _, _ = reply_for(redis_client, voice)

    reply.feed("We open at 8")
    reply.feed("We open at 8 am.")
    assert voice.spoken == [], "no space after the full stop yet: 8 am.m could still follow"
    reply.feed("We open at 8 am. On Sund")
    deadline = time.monotonic() + 5
    while not voice.spoken and time.monotonic() < deadline:
        time.sleep(0.01)

    assert voice.spoken == ["We open at 8 am."]
    assert [s.text for s in reply.finish("We open at 8 am. On Sundays at 9.")] == [
        "We open at 8 am.",
        "On Sundays at 9.",
    ]


def test_sentences_are_announced_in_order_even_when_a_later_one_is_spoken_first(redis_client: redis.Redis) -> None:
    voice = SlowFirstVoice()
    reply, key, started = reply_for(redis_client, voice)

    reply.feed("First one is long. Second. ")
    deadline = time.monotonic() + 5
    while len(voice.spoken) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sentences_announced(redis_client, key) == [], "the second is spoken but waits for the first"
    voice.first_may_finish.set()
    spoken = reply.finish("First one is long. Second. Third!")

    assert sentences_announced(redis_client, key) == ["First one is long.", "Second.", "Third!"]
    events = [event for event, _ in read_stream(redis_client, key)]
    assert events == ["start", "sentence", "sentence", "sentence"], "the next event name comes before any audio"
    assert started == ["next"]
    assert reply.first_audio_at is not None
    assert joined(spoken).duration_seconds == pytest.approx(sum(len(s.text) for s in spoken) / 100)


def test_the_first_sentence_is_announced_while_the_model_is_still_writing(redis_client: redis.Redis) -> None:
    voice = SlowFirstVoice()
    voice.first_may_finish.set()
    reply, key, _ = reply_for(redis_client, voice)

    reply.feed("Delivery costs 40 rupees. It is free above")
    deadline = time.monotonic() + 5
    while not sentences_announced(redis_client, key) and time.monotonic() < deadline:
        time.sleep(0.01)

    assert sentences_announced(redis_client, key) == ["Delivery costs 40 rupees."]
    reply.finish("Delivery costs 40 rupees. It is free above 500 rupees.")


def test_the_opening_clause_is_spoken_before_the_first_sentence_is_complete(redis_client: redis.Redis) -> None:
    voice = SlowFirstVoice()
    voice.first_may_finish.set()
    reply, key, _ = reply_for(redis_client, voice)

    reply.feed("Sure, ")
    reply.feed("Sure, we deliver")
    assert voice.spoken == [], "a lone interjection waits for more words"
    reply.feed("Sure, we deliver everywhere, free")
    deadline = time.monotonic() + 5
    while not sentences_announced(redis_client, key) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sentences_announced(redis_client, key) == ["Sure, we deliver everywhere,"]

    reply.feed("Sure, we deliver everywhere, free above 500 rupees, in an hour. Call")
    spoken = reply.finish("Sure, we deliver everywhere, free above 500 rupees, in an hour. Call us.")
    assert [s.text for s in spoken] == [
        "Sure, we deliver everywhere,",
        "free above 500 rupees, in an hour.",
        "Call us.",
    ], "only the reply's opening is cut at a clause; later sentences stay whole"


def test_a_final_reply_that_does_not_continue_the_stream_restarts_it(redis_client: redis.Redis) -> None:
    voice = SlowFirstVoice()
    voice.first_may_finish.set()
    reply, key, _ = reply_for(redis_client, voice)

    reply.feed("Half of a reply. Then")
    spoken = reply.finish("Sorry, I did not catch that.")

    assert [s.text for s in spoken] == ["Sorry, I did not catch that."]
    events = [event for event, _ in read_stream(redis_client, key)]
    assert events == ["start", "sentence", "restart", "sentence"]
    assert sentences_announced(redis_client, key)[-1] == "Sorry, I did not catch that."


def test_a_sentence_that_cannot_be_spoken_fails_the_reply(redis_client: redis.Redis) -> None:
    def broken(text: str) -> Spoken:
        raise RuntimeError("the voice is gone")

    reply = SpokenReply(
        speak=broken,
        store=lambda index, audio: "never",
        stream=ReplyStream(redis_client, "broken:", str(uuid.uuid4()), 1),
        before_first_audio=lambda: None,
    )

    with pytest.raises(RuntimeError, match="the voice is gone"):
        reply.finish("Hello there.")


def test_a_stopped_reply_announces_nothing_more(redis_client: redis.Redis) -> None:
    voice = SlowFirstVoice()
    reply, key, _ = reply_for(redis_client, voice)

    reply.feed("The first sentence is slow. The second one is quick. ")
    held = reply.stop()  # the listener interrupted before the first sentence was spoken
    voice.first_may_finish.set()
    time.sleep(0.2)

    assert held == []
    assert sentences_announced(redis_client, key) == []
