"""Amazon Connect: a contact is a conversation, each invocation of the bridge Lambda one step of it.

The contact flow invokes the bridge (integrations/amazon-connect/), which forwards the flow's event to
`POST /api/voice/connect`. The first invocation (no `turn`) starts the conversation, once per
`ContactId`, and answers the greeting; the map we answer carries the next `turn`, which the flow keeps
as a contact attribute and passes back with what the caller said, so a retried invocation is the same
turn, never a second one. The disconnect flow's invocation (`event=disconnect`) ends the conversation
and, Connect sending no status callback, gives the call's length: from the conversation's start to it.

No API key here: every request must carry the bridge's signature, checked before anything else
happens, and runs in the tenant its called number (`SystemEndpoint`) belongs to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from functions.auth import check_webhook_address
from functions.conversation_flow import (
    app_services,
    audio_url,
    greeting_reply,
    load_conversation,
    remaining_wait,
    reply_to,
    request_end,
    start_once,
    take_turn_once,
)
from functions.http import json_errors
from functions.phone_calls import FILLER, NOT_IN_SERVICE, SORRY, route_for_number
from shared.errors import ApiError, BadRequest, GatewayTimeout, ServiceUnavailable
from shared.models import Outcome, TurnAction, TurnRecord
from shared.phone import connect
from shared.phone.connect import Action
from shared.phone.twilio import PHONE_RATE
from shared.tenancy import tenant_scope

if TYPE_CHECKING:
    from shared.services import Services
    from shared.storage.conversations import Conversation

bp = df.Blueprint()
log = logging.getLogger(__name__)

CHANNEL = "amazon_connect"
"""The conversation's channel, and the provider a phone number is held for (the admin API's name)."""


def _start_key(contact_id: str) -> str:
    return f"connect:{contact_id}"


def _map(fields: dict[str, str]) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(fields), status_code=200, mimetype=connect.JSON_TYPE, headers={"Cache-Control": "no-store"}
    )


def _refusal(words: str) -> func.HttpResponse:
    """Words the flow speaks before it hangs up (before any conversation, so in the default language)."""
    return _map(connect.answer(Action.END, words))


async def _verified(req: func.HttpRequest) -> tuple[Services, connect.ContactData, connect.Step]:
    """The contact and step, once the bridge's signature holds: 503 unconfigured, 4xx otherwise (429 first
    for a flood from one address)."""
    await check_webhook_address(req)
    svc = app_services()
    secret = svc.settings.connect_bridge_secret.get_secret_value()
    if not secret:
        raise ServiceUnavailable(
            "Amazon Connect calls are not configured (CONNECT_BRIDGE_SECRET).", code="connect_not_configured"
        )
    if svc.audio_urls is None:
        raise ServiceUnavailable(
            "Amazon Connect calls need AUDIO_URL_SIGNING_KEY: the map's audio_url is a signed link.",
            code="connect_not_configured",
        )
    try:
        contact, step = connect.verified(
            secret,
            req.headers.get("content-type"),
            req.get_body(),
            timestamp=req.headers.get(connect.TIMESTAMP_HEADER),
            signature=req.headers.get(connect.SIGNATURE_HEADER),
        )
    except ApiError as error:
        if error.status == 403:
            log.warning("refused a Connect bridge request: %s", error.message)
        raise
    return svc, contact, step


def _spoken(req: func.HttpRequest, svc: Services, conversation: Conversation, turn: TurnRecord) -> dict[str, str]:
    """The reply (words for Polly, and our 8 kHz recording), then what the flow does next."""
    audio = audio_url(req, svc, conversation.id, turn.turn, rate=PHONE_RATE)
    language = conversation.language
    if turn.action is TurnAction.END_CALL:
        return connect.answer(Action.END, turn.reply_text, audio_url=audio, language=language)
    if turn.action is TurnAction.TRANSFER and turn.transfer_to:
        return connect.answer(
            Action.TRANSFER, turn.reply_text, audio_url=audio, transfer_to=turn.transfer_to, language=language
        )
    return connect.answer(Action.CONTINUE, turn.reply_text, audio_url=audio, turn=turn.turn + 1, language=language)


def _hold_on(conversation: Conversation, step: connect.Step) -> dict[str, str]:
    """A filler, and the flow invokes again for the same turn without asking the caller anything."""
    if step.wait >= connect.MAX_HOLDS:
        log.warning("conversation %s: turn %d not answered after %d fillers", conversation.id, step.turn, step.wait)
        return connect.answer(Action.END, SORRY, language=conversation.language)
    return connect.answer(
        Action.CONTINUE,
        FILLER,
        turn=step.turn,
        silences=step.silences,
        wait=step.wait + 1,
        listen=False,
        language=conversation.language,
    )


@bp.route(route="voice/connect", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def connect_invocation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """One invocation of the bridge: the call starts (greeting), the caller spoke or kept silent (a
    turn), the flow comes back for a late reply (`wait`), or the call is over (`event=disconnect`).

    Every answer comes within min(PHONE_REPLY_DEADLINE_SECONDS, MAX_WAIT_SECONDS) of the request's arrival
    (at least MIN_WAIT_SECONDS after the work before the wait): past it, a filler
    for the same turn."""
    received_at = time.time()
    svc, contact, step = await _verified(req)
    routed = await route_for_number(contact.system.address, CHANNEL)
    if routed is None:
        return _refusal(NOT_IN_SERVICE)
    tenant, agent = routed
    with tenant_scope(tenant):
        key = _start_key(contact.contact_id)
        if step.event == connect.DISCONNECT:
            conversation_id = await svc.waiter.started(key)
            if conversation_id is not None:
                conversation = await load_conversation(svc, conversation_id)
                await asyncio.to_thread(lambda: svc.conversations.record_call_length(conversation.id))
                await request_end(svc, client, conversation)
            return _map(connect.answer(Action.END, ""))
        if step.turn == 0:
            return _map(await _greet(req, svc, client, key, agent=agent, step=step, received_at=received_at))
        conversation_id = await svc.waiter.started(key)
        if conversation_id is None:
            return _refusal(SORRY)
        conversation = await load_conversation(svc, conversation_id)
        try:
            return _map(
                await _turn(req, svc, client, conversation, f"{key}:{step.turn}", step=step, received_at=received_at)
            )
        except BadRequest:
            raise
        except ApiError as error:
            log.warning("conversation %s: turn %d not taken (%s)", conversation.id, step.turn, error.code)
            ended = error.code == "conversation_completed"
            return _map(connect.answer(Action.END, "" if ended else SORRY, language=conversation.language))


def _deadline(svc: Services) -> float:
    """The most a request may take before it answers (a filler, when the reply is late)."""
    return min(svc.settings.phone_reply_deadline_seconds, connect.MAX_WAIT_SECONDS)


async def _greet(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    key: str,
    *,
    agent: str,
    step: connect.Step,
    received_at: float,
) -> dict[str, str]:
    """Start the contact's conversation once (a retry finds the same one) and answer its greeting."""
    from shared.turn_requests import StartConversation

    claimed, _ = await start_once(svc, client, key, StartConversation(agent=agent), CHANNEL)
    conversation = await load_conversation(svc, claimed)
    try:
        greeting = await greeting_reply(svc, client, claimed, remaining_wait(_deadline(svc), received_at))
    except GatewayTimeout:
        return _hold_on(conversation, step)
    except ApiError as error:
        log.warning("conversation %s: no greeting (%s)", claimed, error.code)
        return connect.answer(Action.END, SORRY, language=conversation.language)
    return _spoken(req, svc, conversation, greeting)


async def _turn(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    request_id: str,
    *,
    step: connect.Step,
    received_at: float,
) -> dict[str, str]:
    """The caller's turn taken once, its reply within the deadline, or a filler for the same turn; a
    flow back for a late reply (`wait`) waits for it and never raises another."""
    from pydantic import ValidationError

    from shared.turn_requests import TurnBody, TypedTurn

    heard = step.customer_input.strip()
    try:
        if step.wait:
            turn = await reply_to(svc, client, conversation, request_id, remaining_wait(_deadline(svc), received_at))
        elif not heard:
            return await _silence(svc, client, conversation, step)
        else:
            try:
                text = TypedTurn(text=heard).text
            except ValidationError as error:
                raise BadRequest("customer_input is not usable text.", code="malformed_parameters") from error
            turn, _ = await take_turn_once(
                svc,
                client,
                conversation,
                request_id,
                TurnBody(text=text),
                received_at=received_at,
                wait_seconds=_deadline(svc),
            )
    except GatewayTimeout:
        return _hold_on(conversation, step)
    return _spoken(req, svc, conversation, turn)


async def _silence(
    svc: Services, client: df.DurableOrchestrationClient, conversation: Conversation, step: connect.Step
) -> dict[str, str]:
    """Nothing heard: the agent's re-prompt (spoken by the flow), up to MAX_SILENCES in a row, then the
    call ends."""
    if step.silences >= svc.settings.max_silences:
        await request_end(svc, client, conversation, Outcome.NO_RESPONSE)
        return connect.answer(Action.END, "", language=conversation.language)
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent))
    words = profile.reprompt if profile is not None else "Are you still there?"
    return connect.answer(
        Action.CONTINUE, words, turn=step.turn, silences=step.silences + 1, language=conversation.language
    )
