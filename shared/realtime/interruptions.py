"""Barge-in on a reply already written: the stored turn keeps only what the listener heard.

A model writes a reply long before the client has played it, so most barge-ins come after `reply.done`.
The client's `interrupt` names the turn and how many of its sentences began playing; the event handler
keeps the first such count per turn in Redis (`TurnKeys.interrupted`), and this cuts the stored turn to
those sentences, its reply audio too, read from the turn's reply stream and sentence blobs. The cut is
computed from the same stream and the same first count every time, so writing it again (a retried
event, or the turn's writer racing the handler) stores the same turn: it happens once, in effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shared.models import TurnRecord
from shared.speech.audio import Audio, decode_wav, encode_wav
from shared.storage.blobs import reply_audio_name
from shared.storage.handoff import REPLY_TTL_SECONDS, TurnKeys
from shared.storage.reply_stream import StreamedReply, read_stream

if TYPE_CHECKING:
    from shared.services import Services

SENTENCE_MAX_SECONDS = 600.0
"""A sentence we spoke ourselves is read back whatever its length (the bound is for callers' uploads)."""


async def mark_interrupted(services: Services, conversation_id: str, turn: int, played: int) -> None:
    """The listener cut in after starting to hear `played` of the turn's sentences (a web `interrupt`, or a
    caller speaking over a phone reply). The first mark counts: a retry or a later cut changes nothing. The
    reply's writer stops when it sees it; `cut_to_heard` reads it once the reply is stored."""
    key = TurnKeys(services.settings.redis_key_prefix, conversation_id).interrupted(turn)
    await services.async_redis.set(key, played, nx=True, ex=REPLY_TTL_SECONDS)


def played_count(services: Services, conversation_id: str, turn: int) -> int | None:
    """How many of the turn's sentences the client played before it interrupted; None if it did not."""
    raw = services.redis.get(TurnKeys(services.settings.redis_key_prefix, conversation_id).interrupted(turn))
    return None if raw is None else int(raw)


def cut_to_heard(services: Services, conversation_id: str, turn: int) -> TurnRecord | None:
    """The stored turn, cut to the sentences the client played (text and audio); None when the client has
    not interrupted it, its reply stream is gone, or a later turn exists (nothing is changed then)."""
    played = played_count(services, conversation_id, turn)
    if played is None:
        return None
    keys = TurnKeys(services.settings.redis_key_prefix, conversation_id)
    reply = StreamedReply(turn)
    entries = read_stream(services.redis, keys.stream(turn))
    if not entries:
        return None
    for event, data in entries:
        reply.add(event, data)
    heard = reply.sentences[:played]
    audio_blob = None
    if heard:
        audio_blob = reply_audio_name(conversation_id, turn)
        services.audio.put(audio_blob, encode_wav(_joined([_sentence_audio(services, s.audio_blob) for s in heard])))
    return services.conversations.cut_reply(conversation_id, turn, " ".join(s.text for s in heard), audio_blob)


def _sentence_audio(services: Services, blob: str) -> Audio:
    data = services.audio.get(blob)
    if data is None:
        raise LookupError(f"sentence audio {blob} is missing")
    return decode_wav(data, SENTENCE_MAX_SECONDS)


def _joined(sentences: list[Audio]) -> Audio:
    """The sentences as one recording (a reply's sentences share the rate they were asked for)."""
    return Audio(np.concatenate([s.samples for s in sentences]), sentences[0].rate)
