"""Deleting a conversation against real Postgres, Redis and Azurite: everything it kept goes, once, and a
recording that arrives for it meanwhile is not left behind."""

from __future__ import annotations

import uuid

from shared.erasure import erase_conversation, keep_recording
from shared.models import Outcome, TurnKind, TurnRecord
from shared.storage.audit import AuditFilter, AuditLog
from shared.storage.blobs import caller_audio_name, recording_name, reply_audio_name, sentence_audio_name
from shared.storage.handoff import TurnKeys
from tests.conftest import AppServices


def test_erasing_a_conversation_deletes_its_rows_blobs_and_keys_once_and_audits_it(app_services: AppServices) -> None:
    svc = app_services()
    conversation_id = str(uuid.uuid4())
    svc.conversations.create(conversation_id, "demo", "en-US", "twilio")
    greeting = TurnRecord(
        conversation_id=conversation_id,
        turn=0,
        kind=TurnKind.GREETING,
        request_id="greeting",
        user_text=None,
        intent=None,
        reply_text="Hi",
    )
    svc.conversations.record_turn(greeting)
    blobs = [
        reply_audio_name(conversation_id, 0),
        sentence_audio_name(conversation_id, 0, 0),
        caller_audio_name(conversation_id, "key:k1"),
    ]
    for name in blobs:
        svc.audio.put(name, b"RIFF")
    assert keep_recording(svc, conversation_id, b"RIFF-recording", 12) is True
    svc.redis.set(TurnKeys(svc.settings.redis_key_prefix, conversation_id).lock, "r1")
    svc.conversations.complete(conversation_id, Outcome.ENDED_BY_CLIENT, "one greeting")
    conversation = svc.conversations.get(conversation_id)
    assert conversation is not None

    assert erase_conversation(svc, conversation, "user:owner-1") is True
    assert svc.conversations.get(conversation_id) is None
    assert svc.conversations.get_turn(conversation_id, 0) is None
    assert [svc.audio.get(name) for name in [*blobs, recording_name(conversation_id)]] == [None] * 4
    assert svc.redis.exists(TurnKeys(svc.settings.redis_key_prefix, conversation_id).lock) == 0
    [entry] = AuditLog(svc.pool).page(AuditFilter(), 10)
    assert (entry.action, entry.actor, entry.target) == ("conversation.delete", "user:owner-1", conversation_id)
    assert (entry.details["blobs"], entry.details["redis_keys"], entry.details["recording"]) == (4, 1, True)
    assert erase_conversation(svc, conversation, "user:owner-1") is False, "a second erase finds nothing"
    assert len(AuditLog(svc.pool).page(AuditFilter(), 10)) == 1, "and audits nothing"


def test_a_recording_delivered_for_a_conversation_deleted_meanwhile_is_deleted_again(app_services: AppServices) -> None:
    svc = app_services()
    conversation_id = str(uuid.uuid4())
    svc.conversations.create(conversation_id, "demo", "en-US", "twilio")
    conversation = svc.conversations.get(conversation_id)
    assert conversation is not None
    assert erase_conversation(svc, conversation, "user:owner-1") is True
    assert keep_recording(svc, conversation_id, b"RIFF-late", 9) is False
    assert svc.audio.get(recording_name(conversation_id)) is None, "no recording kept beside nothing"
