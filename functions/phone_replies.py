"""How every phone channel plays a reply sentence by sentence, and what happens when the caller cuts in.

A phone webhook plays the sentences of a reply spoken so far and comes back for the rest (Twilio by
`<Redirect>`, Vonage by an input that hears the caller or times out); the URL it comes back to names the
next sentence and the stream's attempt, so a provider's retry plays the same audio, never a sentence twice.

A caller who speaks over sentence k (barge-in) is the next turn, taken once; the interrupted reply keeps
the k + 1 sentences they started hearing (`cut_short`), as a web session's `interrupt` does.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from functions.conversation_flow import earlier_turn, raise_once, watch_instance
from shared.errors import ApiError, Conflict, TurnFailed
from shared.models import Outcome, TurnRecord

if TYPE_CHECKING:
    import azure.durable_functions as df

    from shared.services import Services
    from shared.storage.conversations import Conversation
    from shared.storage.handoff import Claim
    from shared.storage.reply_stream import StreamedReply
    from shared.turn_requests import TurnBody

RAISE_RETRY_SECONDS = 0.05
"""How often a caller's turn is offered again while the reply they cut short is still finishing."""


async def next_sentences(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation_id: str,
    request_id: str,
    *,
    sentence: int,
    attempt: int,
    known: TurnRecord | None,
    wait_seconds: float,
) -> tuple[StreamedReply | TurnRecord | None, int, int]:
    """The reply's stream once it has a sentence past `sentence` (or is done), waited for up to
    `wait_seconds`; the stored turn (`known`, its hand-off copy, or the database's) for a reply with no
    stream; None at the deadline. With it, the sentence and attempt playing resumes at: a stream restarted
    since (a retried attempt) plays from its first sentence again.

    A conversation that ends meanwhile is an error (`unanswered`); an orchestration that dies is noticed
    within INSTANCE_CHECK_SECONDS (`watch_instance` closes its conversation, which ends the wait)."""
    watching = asyncio.create_task(watch_instance(svc, client, conversation_id))
    try:
        return await _next_sentences(
            svc, conversation_id, request_id, sentence=sentence, attempt=attempt, known=known, wait_seconds=wait_seconds
        )
    finally:
        watching.cancel()


async def _next_sentences(
    svc: Services,
    conversation_id: str,
    request_id: str,
    *,
    sentence: int,
    attempt: int,
    known: TurnRecord | None,
    wait_seconds: float,
) -> tuple[StreamedReply | TurnRecord | None, int, int]:
    from shared.storage.handoff import ConversationEnded
    from shared.storage.reply_stream import POLL_SECONDS

    deadline = time.monotonic() + wait_seconds
    turn = await svc.reply_streams.turn_of(conversation_id, request_id)
    while turn is None:
        if known is not None:
            return known, sentence, attempt
        stored = await svc.waiter.stored_reply(conversation_id, request_id)
        if stored is not None:
            return TurnRecord.model_validate(stored), sentence, attempt
        outcome = await svc.waiter.ended(conversation_id)
        if outcome is not None:
            raise unanswered(outcome)
        if time.monotonic() >= deadline:  # or answered so long ago that only the database has it
            return await earlier_turn(svc, conversation_id, request_id), sentence, attempt
        await asyncio.sleep(POLL_SECONDS)
        turn = await svc.reply_streams.turn_of(conversation_id, request_id)
    while True:

        def ready(reply: StreamedReply, at: int = sentence, seen: int = attempt) -> bool:
            return reply.attempt > seen or len(reply.sentences) > at or reply.done is not None

        try:
            found, held = await svc.reply_streams.wait(conversation_id, turn, ready, deadline - time.monotonic())
        except ConversationEnded as ended:
            raise unanswered(ended.outcome) from ended
        if found.attempt > attempt:
            sentence, attempt = 0, found.attempt
            continue
        return (found if held else None), sentence, attempt


def unanswered(outcome: str) -> ApiError:
    """Why a reply will never come: its conversation failed or was terminated on our side (the caller
    hears an apology), or ended otherwise (hung up, or the agent's own end: the call just hangs up)."""
    if outcome in (Outcome.FAILED, Outcome.TERMINATED):
        return TurnFailed(f"The conversation ended ({outcome}) before this turn was answered.")
    return Conflict(f"The conversation ended ({outcome}) before this turn was answered.", code="conversation_completed")


async def cut_short(svc: Services, conversation_id: str, request_id: str, played: int, wait_seconds: float) -> None:
    """The caller spoke over the reply to `request_id` after starting to hear `played` of its sentences:
    the reply stops being written if it still is (its writer sees the turn's `interrupted` key, as for a
    web session's `interrupt`), and once it is stored, up to `wait_seconds`, the turn keeps those
    sentences (`cut_to_heard`, shared with the web channel). The first cut of a reply counts (a
    provider's retry, or a later cut, changes nothing); a reply never streamed, or whose stream is gone,
    is left as it is."""
    from shared.realtime.interruptions import cut_to_heard, mark_interrupted
    from shared.storage.handoff import ConversationEnded

    turn = await svc.reply_streams.turn_of(conversation_id, request_id)
    if turn is None:
        return
    await mark_interrupted(svc, conversation_id, turn, played)
    try:
        _, done = await svc.reply_streams.wait(conversation_id, turn, lambda r: r.done is not None, wait_seconds)
    except ConversationEnded:
        return
    if done:
        await asyncio.to_thread(lambda: cut_to_heard(svc, conversation_id, turn))


async def raise_after_cut(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    request_id: str,
    body: TurnBody,
    *,
    received_at: float,
    wait_seconds: float,
) -> tuple[TurnRecord | None, Claim]:
    """`raise_once` for a caller who cut a reply short: that reply's turn may still be finishing (its
    writer stops within moments), so the caller's turn is offered again until it is free, up to
    `wait_seconds`; then `turn_in_progress` as `raise_once` says it."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return await raise_once(svc, client, conversation, request_id, body, received_at=received_at)
        except Conflict as busy:
            if busy.code != "turn_in_progress" or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(RAISE_RETRY_SECONDS)
