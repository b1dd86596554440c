"""Deleting a conversation and everything kept of it, for good (`DELETE /api/conversations/{id}`).

What it removes, besides the Durable history its route purges: the conversation's Redis keys, every
blob under its folder (reply audio and sentences, the caller's audio, the call's recording), then its
row, whose turns and callbacks cascade, with the audit entry in the same transaction. The row goes
last: until it is gone a retry of the delete finds the conversation and does the rest again (each step
is idempotent), so a failure half-way leaves nothing that cannot be deleted later.

A provider may deliver the call's recording while the delete runs. Its callback stores the blob, then
notes it on the row (`keep_recording`): a blob stored before the row went is in the folder's second
sweep, after the row; one stored after finds no row to note it on and is deleted by the callback itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.audit import AuditAction, AuditEntry
from shared.storage.blobs import conversation_folder, recording_name
from shared.storage.conversation_keys import forget_conversation

if TYPE_CHECKING:
    from shared.services import Services
    from shared.storage.conversations import Conversation


def erase_conversation(svc: Services, conversation: Conversation, actor: str) -> bool:
    """Delete the ended conversation's keys, blobs and rows, audited as `actor`'s; False if it was gone."""
    keys = forget_conversation(svc.redis, svc.settings.redis_key_prefix, conversation.id)
    blobs = svc.audio.delete_folder(conversation_folder(conversation.id))
    if conversation.recording_blob is not None:  # the stored name is the truth, wherever it points
        svc.audio.delete(conversation.recording_blob)
    details = {
        "agent": conversation.agent,
        "channel": conversation.channel,
        "created_at": conversation.created_at.isoformat(),
        "recording": conversation.recording_blob is not None,
        "blobs": blobs,
        "redis_keys": keys,
    }
    entry = AuditEntry(actor, AuditAction.CONVERSATION_DELETE, conversation.id, details)
    if not svc.conversations.delete(conversation.id, entry):
        return False
    svc.audio.delete_folder(conversation_folder(conversation.id))  # a recording stored meanwhile
    return True


def keep_recording(svc: Services, conversation_id: str, data: bytes, seconds: int | None) -> bool:
    """Keep the call's recording with its conversation, once (False: it had one, or is gone); a recording
    whose conversation was deleted while it was being fetched is deleted again, not left behind."""
    blob = recording_name(conversation_id)
    svc.audio.put(blob, data)
    if svc.conversations.record_recording(conversation_id, blob, seconds):
        return True
    if svc.conversations.get(conversation_id) is None:
        svc.audio.delete(blob)
    return False
