"""Vonage Voice API webhooks: a phone call is a conversation, each webhook one step of it.

`answer` starts the conversation (one per call leg `uuid`) and streams the greeting, then an `input`
listens; Vonage recognises the caller's speech and posts it to `input`, whose URL carries the turn's
number, so a retried input webhook is the same turn, never a second one; `event` ends the conversation
when the call is over.

The call leg's `uuid`, not `conversation_uuid`, keys the conversation: it is the caller's leg our NCCO
talks to, while a transfer's `connect` adds another leg to the same Vonage conversation, whose events
must not touch ours.

No API key here: every webhook must carry Vonage's signed JWT, checked before anything else happens, and
runs in the tenant its called number belongs to.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import azure.durable_functions as df
import azure.functions as func

from functions.auth import check_webhook_address
from functions.conversation_flow import (
    app_services,
    audio_url,
    greeting_reply,
    load_conversation,
    reply_to,
    request_end,
    start_once,
    take_turn_once,
)
from functions.http import json_errors, origin
from functions.phone_calls import FILLER, NOT_IN_SERVICE, SORRY, call_over, route_for_number
from shared.errors import ApiError, BadRequest, Forbidden, GatewayTimeout, ServiceUnavailable
from shared.models import TurnAction, TurnRecord
from shared.phone import vonage
from shared.phone.twilio import PHONE_RATE
from shared.tenancy import tenant_scope

if TYPE_CHECKING:
    from shared.services import Services
    from shared.storage.conversations import Conversation

bp = df.Blueprint()
log = logging.getLogger(__name__)

CHANNEL = "vonage"
ANSWER_ROUTE = "/api/voice/vonage/answer"
INPUT_ROUTE = "/api/voice/vonage/input"


def _start_key(call_uuid: str) -> str:
    return f"vonage:{call_uuid}"


def _e164(number: str) -> str:
    """Vonage writes numbers without the `+` (`447700900000`); the phone numbers are E.164."""
    return number if number.startswith("+") or not number.isdigit() else f"+{number}"


def _ncco(actions: list[dict[str, Any]]) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(actions), status_code=200, mimetype=vonage.JSON_TYPE, headers={"Cache-Control": "no-store"}
    )


async def _verified(req: func.HttpRequest) -> tuple[Services, vonage.Webhook]:
    """The webhook, once Vonage's signature over it holds and its token was not used for another request
    (a replay): 503 unconfigured, 4xx otherwise (429 first for a flood from one address)."""
    await check_webhook_address(req)
    svc = app_services()
    settings = svc.settings
    secret = settings.vonage_signature_secret.get_secret_value()
    if not secret:
        raise ServiceUnavailable(
            "Vonage calls are not configured (VONAGE_SIGNATURE_SECRET).", code="vonage_not_configured"
        )
    if svc.audio_urls is None:
        raise ServiceUnavailable(
            "Vonage calls need AUDIO_URL_SIGNING_KEY: Vonage fetches the agent's audio by signed link.",
            code="vonage_not_configured",
        )
    from shared.storage.webhook_tokens import request_fingerprint

    url = urlsplit(req.url)
    try:
        hook = vonage.verified(
            secret,
            req.method,
            url.query,
            req.headers.get("content-type"),
            req.get_body(),
            authorization=req.headers.get("authorization"),
        )
        if settings.vonage_application_id and hook.signed.application_id != settings.vonage_application_id:
            raise Forbidden("The webhook is for another Vonage application.", code="invalid_signature")
        fingerprint = request_fingerprint(req.method, url.path, url.query, hook.signed.payload_hash)
        if not await svc.webhook_tokens.first_use(hook.signed.token_id, fingerprint, vonage.MAX_TOKEN_AGE_SECONDS):
            raise Forbidden("This Vonage token was used for another request.", code="invalid_signature")
    except Forbidden:
        log.warning("refused a Vonage webhook to %s: signature, application or a replayed token", url.path)
        raise
    return svc, hook


def _input_url(req: func.HttpRequest, svc: Services, step: vonage.InputStep) -> str:
    query = f"turn={step.turn}&silences={step.silences}&wait={step.wait}"
    return f"{origin(req, svc.settings.public_base_url)}{INPUT_ROUTE}?{query}"


def _speak(
    req: func.HttpRequest, svc: Services, conversation: Conversation, turn: TurnRecord, called: str
) -> list[dict[str, Any]]:
    """The reply streamed, then the call listens for the next turn, or is connected onward or ends."""
    audio = audio_url(req, svc, conversation.id, turn.turn, rate=PHONE_RATE)
    if turn.action is TurnAction.END_CALL:
        return vonage.finish(audio)
    if turn.action is TurnAction.TRANSFER:
        return vonage.finish(audio, turn.transfer_to, called)
    return vonage.listen(_input_url(req, svc, vonage.InputStep(turn=turn.turn + 1)), conversation.language, audio)


@bp.route(route="voice/vonage/answer", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def vonage_answer(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """A call is answered: start its conversation once (a retry finds the same one) and greet.

    A greeting late past PHONE_REPLY_DEADLINE_SECONDS (at most MAX_WAIT_SECONDS: Vonage wants the NCCO
    in 5 s) gets a filler and an input that comes back here (POST, `wait`), since Vonage has no redirect."""
    from shared.turn_requests import StartConversation

    svc, hook = await _verified(req)
    holding = vonage.our_query(vonage.Holding, hook.ours)
    called = hook.call.to
    routed = await route_for_number(_e164(called), CHANNEL)
    if routed is None:
        return _ncco(vonage.say_and_hang_up("en-US", NOT_IN_SERVICE))
    tenant, agent = routed
    with tenant_scope(tenant):
        key = _start_key(hook.call.uuid)
        claimed, _ = await start_once(svc, client, key, StartConversation(agent=agent), CHANNEL)
        conversation = await load_conversation(svc, claimed)
        deadline = min(svc.settings.phone_reply_deadline_seconds, vonage.MAX_WAIT_SECONDS)
        try:
            greeting = await greeting_reply(svc, client, claimed, deadline)
        except GatewayTimeout:
            if holding.wait >= vonage.MAX_HOLDS:
                log.warning("call %s: no greeting after %d fillers", hook.call.uuid, holding.wait)
                return _ncco(vonage.say_and_hang_up(conversation.language, SORRY))
            back = f"{origin(req, svc.settings.public_base_url)}{ANSWER_ROUTE}?wait={holding.wait + 1}"
            return _ncco(vonage.hold_on(back, conversation.language, FILLER))
        except ApiError as error:
            log.warning("call %s: no greeting (%s)", hook.call.uuid, error.code)
            return _ncco(vonage.say_and_hang_up(conversation.language, SORRY))
        return _ncco(_speak(req, svc, conversation, greeting, called))


@bp.route(route="voice/vonage/input", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def vonage_input(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The caller spoke (or keyed, or kept silent): take that turn once and stream the agent's reply.

    A reply not ready by PHONE_REPLY_DEADLINE_SECONDS (at most MAX_WAIT_SECONDS) gets a filler and an
    input that times out at once back here marked `wait`, which waits for the same turn's reply and never
    raises another.
    """
    from pydantic import ValidationError

    from shared.turn_requests import TurnBody, TypedTurn

    received_at = time.time()
    svc, hook = await _verified(req)
    step = vonage.our_query(vonage.InputStep, hook.ours)
    called = hook.call.to
    routed = await route_for_number(_e164(called), CHANNEL)
    if routed is None:
        return _ncco(vonage.say_and_hang_up("en-US", NOT_IN_SERVICE))
    with tenant_scope(routed[0]):
        conversation_id = await svc.waiter.started(_start_key(hook.call.uuid))
        if conversation_id is None:
            return _ncco(vonage.say_and_hang_up("en-US", SORRY))
        conversation = await load_conversation(svc, conversation_id)
        language = conversation.language
        request_id = f"{_start_key(hook.call.uuid)}:{step.turn}"
        deadline = min(svc.settings.phone_reply_deadline_seconds, vonage.MAX_WAIT_SECONDS)
        heard = hook.call.heard()
        try:
            if step.wait:
                turn = await reply_to(svc, client, conversation, request_id, deadline)
            elif not heard:
                return _ncco(await _silence(req, svc, client, conversation, step))
            else:
                try:
                    text = TypedTurn(text=heard).text
                except ValidationError as error:
                    raise BadRequest("The speech result or keys are not usable text.", code="malformed_body") from error
                turn, _ = await take_turn_once(
                    svc,
                    client,
                    conversation,
                    request_id,
                    TurnBody(text=text),
                    received_at=received_at,
                    wait_seconds=deadline,
                )
        except GatewayTimeout:
            if step.wait >= vonage.MAX_HOLDS:
                log.warning("call %s: turn %d not answered after %d fillers", hook.call.uuid, step.turn, step.wait)
                return _ncco(vonage.say_and_hang_up(language, SORRY))
            waiting = step.model_copy(update={"wait": step.wait + 1})
            return _ncco(vonage.hold_on(_input_url(req, svc, waiting), language, FILLER))
        except BadRequest:
            raise
        except ApiError as error:
            log.warning("call %s: turn %d not taken (%s)", hook.call.uuid, step.turn, error.code)
            ended = error.code == "conversation_completed"
            return _ncco([] if ended else vonage.say_and_hang_up(language, SORRY))
        return _ncco(_speak(req, svc, conversation, turn, called))


async def _silence(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    step: vonage.InputStep,
) -> list[dict[str, Any]]:
    """Nothing heard: the agent's re-prompt, up to MAX_SILENCES in a row, then the call ends (an empty
    NCCO: nothing more to do)."""
    if step.silences >= svc.settings.max_silences:
        await request_end(svc, client, conversation)
        return []
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent))
    words = profile.reprompt if profile is not None else "Are you still there?"
    again = step.model_copy(update={"silences": step.silences + 1})
    return vonage.prompt_again(_input_url(req, svc, again), conversation.language, words)


@bp.route(route="voice/vonage/event", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def vonage_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The call's status changed: once it is over (completed, busy, failed, unanswered, …), the
    conversation ends with that outcome and keeps the call's `duration`; any other status, again, or for
    a call we never started, is no error. An agent that ended the call first keeps its own outcome."""
    svc, hook = await _verified(req)
    outcome = vonage.ENDED_STATUSES.get(hook.call.status)
    routed = await route_for_number(_e164(hook.call.to), CHANNEL)
    if routed is not None and outcome is not None:
        start = _start_key(hook.call.uuid)
        await call_over(svc, client, routed[0], start, outcome=outcome, duration=hook.call.duration)
    return func.HttpResponse(status_code=200)
