"""The conversation service every channel shares: start a conversation once, take a turn once per
request id and wait for its reply, end it, and link its audio.

The HTTP API (`functions/conversations.py`), the phone webhooks and the realtime channel are thin
adapters over these: each derives its own request ids (an Idempotency-Key, a provider's call id and
turn) and renders the same turns in its own markup.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from functions.conversation import END_EVENT, GREETING_REQUEST_ID, ORCHESTRATOR
from functions.http import origin
from shared import telemetry
from shared.errors import Conflict, GatewayTimeout, NotFound, TurnFailed
from shared.models import ConversationState, DialogPolicy, FinalizeInput, Outcome, TurnRecord, Utterance
from shared.tenancy import current_tenant

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.services import Services
    from shared.storage.conversations import Conversation
    from shared.storage.handoff import Claim
    from shared.turn_requests import StartConversation, TurnBody

# The app's core (storage clients, request parsing with audio decoding, the activities) loads on a
# function's first call, not at import: every cold start, health checks included, would pay for it.

log = logging.getLogger(__name__)

API_CHANNEL = "api"
ACCEPTING = (df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending)
DEAD: dict[df.OrchestrationRuntimeStatus, Outcome] = {
    df.OrchestrationRuntimeStatus.Failed: Outcome.FAILED,
    df.OrchestrationRuntimeStatus.Terminated: Outcome.TERMINATED,
    df.OrchestrationRuntimeStatus.Canceled: Outcome.TERMINATED,
}
"""Runtime states from which a conversation never answers again, and the outcome it is closed with."""
ENDING_STATES = frozenset({"ending", "finalizing"})
TURN_LOCK_MARGIN_SECONDS = 120
"""How long a turn lock outlives the reply deadline if its turn never completes (a crash)."""
START_KEY_TTL_SECONDS = 24 * 3600
"""How long a start request's Idempotency-Key keeps pointing at the conversation it made."""
INSTANCE_CHECK_SECONDS = 2.0
"""How often a waiting request checks that the orchestration it waits on is still alive."""
RAISE_GRACE_SECONDS = 30
"""How long a request that took the turn may take to raise its utterance before a retry does it."""
MIN_WAIT_SECONDS = 0.5
"""The least a webhook waits for a reply, however much of its budget the work before took."""
UNSTARTED_GRACE_SECONDS = 60
"""A conversation whose orchestration cannot be found this long after creation will never start."""


def app_services() -> Services:
    from shared.services import services

    return services()


def _policy(settings: Settings) -> DialogPolicy:
    return DialogPolicy(
        silence_timeout_seconds=settings.silence_timeout_seconds,
        max_silences=settings.max_silences,
        turns_per_generation=settings.turns_per_generation,
    )


def audio_url(
    req: func.HttpRequest,
    svc: Services,
    conversation_id: str,
    turn: int,
    *,
    sentence: int | None = None,
    rate: int | None = None,
) -> str:
    """The turn's (or one sentence's) audio link, signed for the caller's tenant when AUDIO_URL_SIGNING_KEY
    is set (so a browser or a phone provider can fetch it without our headers), else behind the usual
    credentials; `rate` asks for the audio at that rate (phone calls: 8 kHz, a third of the bytes)."""
    path = f"/api/conversations/{conversation_id}/audio/{turn}" + ("" if sentence is None else f"/{sentence}")
    query = [] if rate is None else [f"rate={rate}"]
    if svc.audio_urls is not None:
        tenant = current_tenant()
        token = svc.audio_urls.sign(tenant=tenant, conversation_id=conversation_id, turn=turn, sentence=sentence)
        query.insert(0, f"token={token}")
    return f"{origin(req, svc.settings.public_base_url)}{path}" + (f"?{'&'.join(query)}" if query else "")


def _valid_id(conversation_id: str) -> str:
    try:
        return str(uuid.UUID(conversation_id))
    except ValueError as error:
        raise NotFound(f"No conversation {conversation_id!r}.") from error


async def load_conversation(svc: Services, conversation_id: str) -> Conversation:
    """The stored conversation; first use of the pool (migrations included) runs off the event loop."""
    valid_id = _valid_id(conversation_id)
    conversation = await asyncio.to_thread(lambda: svc.conversations.get(valid_id))
    if conversation is None:
        raise NotFound(f"No conversation {conversation_id!r}.")
    return conversation


def _not_found(status: DurableOrchestrationStatus) -> bool:
    """The status query answered 404 (a text body, usually empty), not an error with a JSON body.

    The SDK client turns 404 and 500 alike into a falsy status; only a 404 says the instance is gone.
    """
    return not status and isinstance(getattr(status, "message", None), str)


def closing_outcome(conversation: Conversation, status: DurableOrchestrationStatus) -> Outcome | None:
    """The outcome to close the conversation with if its orchestration is dead, else None."""
    if status:
        return DEAD.get(status.runtime_status)
    age = datetime.now(UTC) - conversation.created_at
    return Outcome.TERMINATED if _not_found(status) and age.total_seconds() > UNSTARTED_GRACE_SECONDS else None


async def settled(svc: Services, conversation: Conversation, status: DurableOrchestrationStatus) -> Conversation:
    """The conversation as it really is: one whose orchestration is dead is finalized now.

    A terminated or failed instance runs no more code (a failed `finalize` included), so whoever
    next looks at the conversation closes it; a conversation never shows `active` for a dead instance.
    """
    if conversation.status == "completed":
        return conversation
    outcome = closing_outcome(conversation, status)
    if outcome is None:
        return conversation
    closing = FinalizeInput(conversation_id=conversation.id, tenant=current_tenant(), outcome=outcome)
    from shared import activities

    await asyncio.to_thread(lambda: activities.finalize(svc, closing))
    return await load_conversation(svc, conversation.id)


async def watch_instance(svc: Services, client: df.DurableOrchestrationClient, conversation_id: str) -> None:
    """Close the conversation as soon as its orchestration dies under a waiting request.

    Closing it announces the end, which wakes the waiting request at once instead of at its deadline.
    """
    while True:
        await asyncio.sleep(INSTANCE_CHECK_SECONDS)
        try:
            status = await client.get_status(conversation_id)
            if status and status.runtime_status not in DEAD:
                continue
            conversation = await asyncio.to_thread(lambda: svc.conversations.get(conversation_id))
            if conversation is not None and (await settled(svc, conversation, status)).status == "completed":
                return
        except Exception:
            log.exception("could not check the orchestration of %s", conversation_id)


async def await_reply(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation_id: str,
    request_id: str,
    wait_seconds: float | None = None,
) -> TurnRecord:
    """The reply to this request, waited `wait_seconds` (TURN_REPLY_TIMEOUT_SECONDS unless given); a
    GatewayTimeout after it, while the turn goes on."""
    from shared.storage.handoff import ConversationEnded

    watching = asyncio.create_task(watch_instance(svc, client, conversation_id))
    try:
        reply = await svc.waiter.wait(
            conversation_id,
            request_id,
            svc.settings.turn_reply_timeout_seconds if wait_seconds is None else wait_seconds,
        )
    except ConversationEnded as ended:
        published = await svc.waiter.stored_reply(conversation_id, request_id)
        if published is not None:
            return TurnRecord.model_validate(published)
        if ended.outcome == Outcome.FAILED:
            raise TurnFailed(
                "The conversation failed before this turn was answered and has ended. "
                f"GET /api/conversations/{conversation_id} for what was said."
            ) from ended
        raise Conflict(
            f"The conversation ended ({ended.outcome}) before this turn was answered.", code="conversation_completed"
        ) from ended
    finally:
        watching.cancel()
    if reply is None:
        raise GatewayTimeout(
            "The reply is taking longer than expected. "
            f"GET /api/conversations/{conversation_id} for the turn and the conversation's status, "
            "or retry with the same Idempotency-Key."
        )
    return TurnRecord.model_validate(reply)


async def begin(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation_id: str,
    request: StartConversation,
    channel: str = API_CHANNEL,
    *,
    ringing_seconds: int | None = None,
) -> None:
    """Create the conversation and start its orchestration: it greets at once, or, for an outbound call
    (`ringing_seconds`), once the call is answered."""
    from shared.realtime.protocol import WEB_CHANNEL

    agent_name = request.agent or svc.settings.default_agent
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(agent_name))
    if profile is None:
        raise NotFound(f"No agent {agent_name!r}.", code="unknown_agent")
    language = request.language or profile.language
    await asyncio.to_thread(lambda: svc.conversations.create(conversation_id, profile.name, language, channel))
    state = ConversationState(
        conversation_id=conversation_id,
        tenant=current_tenant(),
        agent=profile.name,
        language=language,
        policy=_policy(svc.settings),
        ringing_seconds=ringing_seconds,
        greeting_trace=telemetry.traceparent(),
        disconnect_grace_seconds=svc.settings.realtime_disconnect_grace_seconds if channel == WEB_CHANNEL else None,
    )
    await client.start_new(ORCHESTRATOR, conversation_id, state.model_dump(mode="json"))
    telemetry.conversation_started()


async def take_turn_once(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    request_id: str,
    body: TurnBody,
    *,
    received_at: float,
    wait_seconds: float | None = None,
) -> tuple[TurnRecord, bool]:
    """Raise the utterance once per request id and wait for its reply; retries get the same turn.
    `wait_seconds` (a webhook's budget) counts from the request's arrival, raising the turn included.

    Returns the turn and whether it was answered before (a retry), not made for this request.
    """
    from shared.storage.handoff import Claim

    earlier, claim = await raise_once(svc, client, conversation, request_id, body, received_at=received_at)
    if earlier is not None:
        return earlier, True
    wait = None if wait_seconds is None else remaining_wait(wait_seconds, received_at)
    return await await_reply(svc, client, conversation.id, request_id, wait), claim is Claim.HELD


def remaining_wait(budget_seconds: float, received_at: float) -> float:
    """What is left of a request's `budget_seconds` for waiting, counted from its arrival (starting a
    conversation or raising a turn takes from it), so a provider's answer deadline holds on a cold
    worker too; never under MIN_WAIT_SECONDS, so a reply that is ready is still picked up."""
    return max(MIN_WAIT_SECONDS, budget_seconds - (time.time() - received_at))


async def raise_once(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    request_id: str,
    body: TurnBody,
    *,
    received_at: float,
) -> tuple[TurnRecord | None, Claim]:
    """Raise the utterance once per request id, without waiting for its reply: the turn answered
    before (a retry) if there is one, and the turn lock as this request found it.

    A retry whose original died before raising the utterance (nothing raised, and nobody raising it
    for RAISE_GRACE_SECONDS) raises it itself, so no retry waits on a lock nothing will release.
    """
    from shared.storage.handoff import Claim

    stored = await svc.waiter.stored_reply(conversation.id, request_id)
    if stored is not None:
        return TurnRecord.model_validate(stored), Claim.HELD
    if conversation.status != "active":
        earlier = await earlier_turn(svc, conversation.id, request_id)
        if earlier is not None:
            return earlier, Claim.HELD
        raise Conflict("The conversation has ended.", code="conversation_completed")
    lock_ttl = int(svc.settings.turn_reply_timeout_seconds) + TURN_LOCK_MARGIN_SECONDS
    claim = await svc.waiter.claim_turn(conversation.id, request_id, lock_ttl)
    if claim is Claim.TAKEN:
        raise Conflict("Another turn of this conversation is still in progress.", code="turn_in_progress")
    if claim is Claim.NEW:
        earlier = await earlier_turn(svc, conversation.id, request_id)
        if earlier is not None:  # a key re-used after its hand-off copy expired: the same turn again
            await svc.waiter.release_turn(conversation.id, request_id)
            return earlier, claim
    if await svc.waiter.begin_raise(conversation.id, request_id, RAISE_GRACE_SECONDS):
        try:
            await _raise_utterance(svc, client, conversation, request_id, body, received_at=received_at)
        except BaseException:
            await svc.waiter.release_turn(conversation.id, request_id)
            raise
        await svc.waiter.mark_raised(conversation.id, request_id, lock_ttl)
    return None, claim


async def earlier_turn(svc: Services, conversation_id: str, request_id: str) -> TurnRecord | None:
    return await asyncio.to_thread(lambda: svc.conversations.get_turn_by_request(conversation_id, request_id))


async def _raise_utterance(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    request_id: str,
    body: TurnBody,
    *,
    received_at: float,
) -> None:
    """Send the utterance under the event name the last reply announced (before its first audio), or,
    before any reply has, the one the orchestration's custom status shows."""
    from shared.storage.blobs import caller_audio_name

    status = await client.get_status(conversation.id)
    if not status and closing_outcome(conversation, status) is None:
        raise Conflict("The conversation is still starting; retry in a moment.", code="conversation_starting")
    if not status or status.runtime_status not in ACCEPTING:
        await settled(svc, conversation, status)
        raise Conflict("The conversation has ended.", code="conversation_completed")
    custom = status.custom_status if isinstance(status.custom_status, dict) else {}
    announced = await svc.waiter.expecting(conversation.id)
    if custom.get("state") in ENDING_STATES or announced == "":
        raise Conflict("The conversation is ending.", code="conversation_completed")
    event = announced or custom.get("expecting")
    if event is None:
        raise Conflict("The conversation is still starting; retry in a moment.", code="conversation_starting")
    audio_blob, wav = None, body.wav
    if wav is not None:
        blob = audio_blob = caller_audio_name(conversation.id, request_id)
        await asyncio.to_thread(lambda: svc.audio.put(blob, wav))
    utterance = Utterance(
        request_id=request_id,
        text=body.text,
        audio_blob=audio_blob,
        received_at=received_at,
        trace=telemetry.traceparent(),
    )
    try:
        await client.raise_event(conversation.id, str(event), utterance.model_dump())
    except Exception as error:
        raise Conflict("The conversation is no longer accepting turns.", code="conversation_completed") from error


async def request_end(
    svc: Services, client: df.DurableOrchestrationClient, conversation: Conversation, outcome: Outcome | None = None
) -> bool:
    """Ask the conversation to end (it finalizes, with `outcome` if given, else ended by the client);
    False when it had ended already."""
    if conversation.status == "completed":
        return False
    await asyncio.to_thread(lambda: svc.conversations.mark_ending(conversation.id))
    try:
        await client.raise_event(conversation.id, END_EVENT, None if outcome is None else {"outcome": outcome.value})
    except Exception:
        await settled(svc, conversation, await client.get_status(conversation.id))
        return False
    return True


async def start_once(
    svc: Services,
    client: df.DurableOrchestrationClient,
    key: str,
    request: StartConversation,
    channel: str = API_CHANNEL,
) -> tuple[str, bool]:
    """The conversation started under `key` (an Idempotency-Key, a provider's call id), begun now or
    found (a retry), and whether this request began it."""
    conversation_id = str(uuid.uuid4())
    claimed = await svc.waiter.claim_start(key, conversation_id, START_KEY_TTL_SECONDS)
    if claimed != conversation_id:
        return claimed, False
    try:
        await begin(svc, client, conversation_id, request, channel)
    except BaseException:
        await svc.waiter.release_start(key, conversation_id)
        raise
    return conversation_id, True


async def greeting_reply(
    svc: Services, client: df.DurableOrchestrationClient, conversation_id: str, wait_seconds: float | None = None
) -> TurnRecord:
    """The conversation's greeting (turn 0), waited for as `await_reply` waits; one spoken long ago is
    read from the database, its hand-off copy being gone."""
    earlier = await earlier_turn(svc, conversation_id, GREETING_REQUEST_ID)
    if earlier is not None and earlier.audio_blob is not None:
        return earlier
    return await await_reply(svc, client, conversation_id, GREETING_REQUEST_ID, wait_seconds)


async def reply_to(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    request_id: str,
    wait_seconds: float,
) -> TurnRecord:
    """The whole reply to a turn already taken, as soon as there is one (GatewayTimeout after
    `wait_seconds`), for channels that play a reply as one recording."""
    stored = await svc.waiter.stored_reply(conversation.id, request_id)
    if stored is not None:
        return TurnRecord.model_validate(stored)
    earlier = await earlier_turn(svc, conversation.id, request_id)
    if earlier is not None:
        return earlier
    return await await_reply(svc, client, conversation.id, request_id, wait_seconds)
