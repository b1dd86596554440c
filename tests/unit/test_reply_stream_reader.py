"""Reading a reply stream as a phone call does: the request's turn, the sentences in order, restarts."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import uuid

import pytest
import redis
import redis.asyncio as aioredis

from shared.storage.handoff import ConversationEnded, ReplyPublisher
from shared.storage.reply_stream import AnnouncedSentence, ReplyStream, ReplyStreamReader, StreamedReply

PREFIX = "reader-test:"


def sentence(index: int, text: str) -> AnnouncedSentence:
    return AnnouncedSentence(index=index, text=text, audio_blob=f"blob-{index}", duration_seconds=1.0, engine="e")


def read(redis_url: str, conversation_id: str, request_id: str, at: int, timeout: float) -> tuple[StreamedReply, bool]:
    async def reading() -> tuple[StreamedReply, bool]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            reader = ReplyStreamReader(client, PREFIX)
            turn = await reader.turn_of(conversation_id, request_id)
            assert turn == 3
            return await reader.wait(conversation_id, turn, lambda r: len(r.sentences) > at, timeout)
        finally:
            await client.aclose()

    return asyncio.run(reading())


def test_a_reader_finds_the_requests_turn_and_drops_sentences_of_an_attempt_that_restarted(redis_url: str) -> None:
    conversation_id = str(uuid.uuid4())
    stream = ReplyStream(redis.Redis.from_url(redis_url), PREFIX, conversation_id, 3)
    stream.start("utterance-4", "call:2")
    stream.sentence(sentence(0, "First try."))
    stream.start("utterance-4", "call:2")  # a retried attempt
    stream.sentence(sentence(0, "Second try."))
    stream.sentence(sentence(1, "And more."))
    stream.done({"turn": 3})
    reply, ready = read(redis_url, conversation_id, "call:2", 1, 1.0)
    assert ready
    assert reply.attempt == 1
    assert [s.text for s in reply.sentences] == ["Second try.", "And more."]
    assert reply.done == {"turn": 3}


def test_a_reader_waits_for_a_sentence_written_later_and_gives_up_at_its_deadline(redis_url: str) -> None:
    conversation_id = str(uuid.uuid4())
    stream = ReplyStream(redis.Redis.from_url(redis_url), PREFIX, conversation_id, 3)
    stream.start("utterance-4", "call:2")
    stream.sentence(sentence(0, "Now."))
    later = threading.Timer(0.3, lambda: stream.sentence(sentence(1, "Later.")))
    later.start()
    reply, ready = read(redis_url, conversation_id, "call:2", 1, 5.0)
    later.join()
    assert ready
    assert [s.text for s in reply.sentences] == ["Now.", "Later."]
    reply, ready = read(redis_url, conversation_id, "call:2", 2, 0.2)
    assert not ready
    assert len(reply.sentences) == 2


def test_a_reader_stops_waiting_as_soon_as_the_conversation_ends_with_the_reply_unfinished(redis_url: str) -> None:
    conversation_id = str(uuid.uuid4())
    client = redis.Redis.from_url(redis_url)
    stream = ReplyStream(client, PREFIX, conversation_id, 3)
    stream.start("utterance-4", "call:2")
    stream.sentence(sentence(0, "Now."))
    publisher = ReplyPublisher(client, PREFIX)
    in_tenant = contextvars.copy_context()  # the thread ends the call in the test's tenant
    ending = threading.Timer(0.3, in_tenant.run, (publisher.announce_end, conversation_id, "terminated"))
    ending.start()
    started = time.monotonic()
    with pytest.raises(ConversationEnded) as ended:
        read(redis_url, conversation_id, "call:2", 1, 10.0)
    ending.join()
    assert ended.value.outcome == "terminated"
    assert time.monotonic() - started < 2, "at the next slice, not at the deadline"
    stream.sentence(sentence(1, "Ready."))
    reply, ready = read(redis_url, conversation_id, "call:2", 1, 10.0)
    assert ready, "a reply already there is read whole, ended or not"
    assert [s.text for s in reply.sentences] == ["Now.", "Ready."]
