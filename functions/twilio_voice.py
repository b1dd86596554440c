"""Twilio Programmable Voice webhooks: a phone call is a conversation, each webhook one step of it.

`incoming` starts the conversation (one per CallSid) and plays the greeting as replies play (below),
then listens in a `<Gather>`;
Twilio recognises the caller's speech and posts it to `gather`, which takes the turn and plays the
reply's first sentence as soon as it is spoken, then redirects to `reply`, which plays the sentences
spoken since and redirects again until the reply is done, then listens in the next `<Gather>`;
`status` ends the conversation when the call is over. The gather URL carries the turn's number and
each redirect the next sentence's, so a Twilio retry is the same turn and the same sentence.

No API key here: every webhook must carry Twilio's signature (`X-Twilio-Signature`), checked before
anything else happens, and runs in the tenant its called number belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from functions.auth import check_webhook_address
from functions.conversation import GREETING_REQUEST_ID
from functions.conversation_flow import (
    app_services,
    audio_url,
    earlier_turn,
    load_conversation,
    raise_once,
    request_end,
    start_once,
    watch_instance,
)
from functions.http import json_errors, origin
from functions.phone_calls import FILLER, NOT_IN_SERVICE, SORRY, call_over, route_for_number
from shared.errors import ApiError, BadRequest, Conflict, Forbidden, ServiceUnavailable, TurnFailed
from shared.models import Outcome, TurnAction, TurnRecord
from shared.phone import twilio
from shared.tenancy import tenant_scope

if TYPE_CHECKING:
    from shared.services import Services
    from shared.storage.conversations import Conversation
    from shared.storage.reply_stream import StreamedReply

bp = df.Blueprint()
log = logging.getLogger(__name__)

CHANNEL = "twilio"
GATHER_ROUTE = "/api/voice/twilio/gather"
REPLY_ROUTE = "/api/voice/twilio/reply"


def _start_key(call_sid: str) -> str:
    return f"twilio:{call_sid}"


def _request_id(call_sid: str, turn: int) -> str:
    """The request a turn of the call is: turn 0, the greeting, is the conversation's own; a caller's
    turn is the CallSid's and its number, so a retried webhook is the same request."""
    return GREETING_REQUEST_ID if turn == 0 else f"{_start_key(call_sid)}:{turn}"


def _twiml(xml: str) -> func.HttpResponse:
    return func.HttpResponse(xml, status_code=200, mimetype=twilio.TWIML_TYPE, headers={"Cache-Control": "no-store"})


async def _verified(req: func.HttpRequest) -> tuple[Services, twilio.CallForm]:
    """The webhook's form, once Twilio's signature over it holds: 503 unconfigured, 4xx otherwise (429 first
    for a flood from one address)."""
    await check_webhook_address(req)
    svc = app_services()
    settings = svc.settings
    token = settings.twilio_auth_token.get_secret_value()
    if not token:
        raise ServiceUnavailable("Twilio calls are not configured (TWILIO_AUTH_TOKEN).", code="twilio_not_configured")
    if svc.audio_urls is None:
        raise ServiceUnavailable(
            "Twilio calls need AUDIO_URL_SIGNING_KEY: Twilio fetches the agent's audio by signed link.",
            code="twilio_not_configured",
        )
    form = twilio.parse_form(req.headers.get("content-type"), req.get_body())
    url = twilio.public_url(req.url, settings.public_base_url)
    try:
        twilio.check_signature(token, url, form, req.headers.get(twilio.SIGNATURE_HEADER))
        if settings.twilio_account_sid and form.get("AccountSid") != settings.twilio_account_sid:
            raise Forbidden("The webhook is from another Twilio account.", code="invalid_signature")
    except Forbidden:
        log.warning("refused a Twilio webhook to %s for call %s: signature or account", url, form.call_sid)
        raise
    return svc, form


def _gather_url(req: func.HttpRequest, svc: Services, step: twilio.GatherStep) -> str:
    query = f"turn={step.turn}&silences={step.silences}&wait={step.wait}"
    return f"{origin(req, svc.settings.public_base_url)}{GATHER_ROUTE}?{query}"


def _reply_url(req: func.HttpRequest, svc: Services, step: twilio.ReplyStep) -> str:
    query = f"turn={step.turn}&sentence={step.sentence}&attempt={step.attempt}&wait={step.wait}"
    return f"{origin(req, svc.settings.public_base_url)}{REPLY_ROUTE}?{query}"


def _then(
    req: func.HttpRequest,
    svc: Services,
    conversation: Conversation,
    turn: TurnRecord,
    audio: list[str],
    *,
    gather_turn: int | None = None,
) -> str:
    """The reply's last audio, then the call listens for the caller's turn `gather_turn` (the next
    after this one unless given), or is transferred or hung up."""
    if turn.action is TurnAction.END_CALL:
        return twilio.finish(audio)
    if turn.action is TurnAction.TRANSFER:
        return twilio.finish(audio, turn.transfer_to)
    step = twilio.GatherStep(turn=turn.turn + 1 if gather_turn is None else gather_turn)
    return twilio.listen(_gather_url(req, svc, step), conversation.language, *audio)


@bp.route(route="voice/twilio/incoming", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def twilio_incoming(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """A call arrives: start its conversation once (a retry finds the same one) and play the greeting
    (turn 0) sentence by sentence, as `_streamed` plays a reply.

    `wait` is a filler's count in a redirect written before the greeting went through the reply route."""
    from shared.turn_requests import StartConversation

    svc, form = await _verified(req)
    holding = twilio.our_query(twilio.Holding, dict(req.params))
    routed = await route_for_number(form.get("To"), CHANNEL)
    if routed is None:
        return _twiml(twilio.say_and_hang_up("en-US", NOT_IN_SERVICE))
    tenant, agent = routed
    with tenant_scope(tenant):
        key = _start_key(form.call_sid)
        claimed, _ = await start_once(svc, client, key, StartConversation(agent=agent), CHANNEL)
        conversation = await load_conversation(svc, claimed)
        greeting = twilio.ReplyStep(turn=0, wait=holding.wait)
        try:
            return _twiml(await _streamed(req, svc, conversation, GREETING_REQUEST_ID, greeting, client=client))
        except ApiError as error:
            log.warning("call %s: no greeting (%s)", form.call_sid, error.code)
            return _twiml(twilio.say_and_hang_up(conversation.language, SORRY))


@bp.route(route="voice/twilio/gather", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def twilio_gather(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The caller spoke (or keyed, or kept silent): take that turn once and play the agent's reply,
    from its first sentence as soon as that is spoken (see `_streamed`).

    A gather marked `wait` (written by TwiML before the reply route existed) waits for the same turn's
    reply and never raises another.
    """
    from pydantic import ValidationError

    from shared.turn_requests import TurnBody, TypedTurn

    received_at = time.time()
    svc, form = await _verified(req)
    step = twilio.our_query(twilio.GatherStep, dict(req.params))
    routed = await route_for_number(form.get("To"), CHANNEL)
    if routed is None:
        return _twiml(twilio.say_and_hang_up("en-US", NOT_IN_SERVICE))
    with tenant_scope(routed[0]):
        conversation_id = await svc.waiter.started(_start_key(form.call_sid))
        if conversation_id is None:
            return _twiml(twilio.say_and_hang_up("en-US", SORRY))
        conversation = await load_conversation(svc, conversation_id)
        language = conversation.language
        request_id = _request_id(form.call_sid, step.turn)
        heard = form.get("SpeechResult").strip() or form.get("Digits").strip()
        known = None
        try:
            if not step.wait and not heard:
                return _twiml(await _silence(req, svc, client, conversation, step))
            if not step.wait:
                try:
                    text = TypedTurn(text=heard).text
                except ValidationError as error:
                    raise BadRequest("SpeechResult or Digits is not usable text.", code="malformed_form") from error
                body = TurnBody(text=text)
                known, _ = await raise_once(svc, client, conversation, request_id, body, received_at=received_at)
            reply = twilio.ReplyStep(turn=step.turn, wait=step.wait)
            return _twiml(await _streamed(req, svc, conversation, request_id, reply, client=client, known=known))
        except BadRequest:
            raise
        except ApiError as error:
            log.warning("call %s: turn %d not taken (%s)", form.call_sid, step.turn, error.code)
            ended = error.code == "conversation_completed"
            return _twiml(twilio.hang_up() if ended else twilio.say_and_hang_up(language, SORRY))


@bp.route(route="voice/twilio/reply", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def twilio_reply(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The next sentences of a reply being spoken (our own redirect, signed by Twilio like every webhook)."""
    svc, form = await _verified(req)
    step = twilio.our_query(twilio.ReplyStep, dict(req.params))
    routed = await route_for_number(form.get("To"), CHANNEL)
    if routed is None:
        return _twiml(twilio.say_and_hang_up("en-US", NOT_IN_SERVICE))
    with tenant_scope(routed[0]):
        conversation_id = await svc.waiter.started(_start_key(form.call_sid))
        if conversation_id is None:
            return _twiml(twilio.say_and_hang_up("en-US", SORRY))
        conversation = await load_conversation(svc, conversation_id)
        request_id = _request_id(form.call_sid, step.turn)
        try:
            return _twiml(await _streamed(req, svc, conversation, request_id, step, client=client))
        except ApiError as error:
            log.warning("call %s: turn %d not answered (%s)", form.call_sid, step.turn, error.code)
            ended = error.code == "conversation_completed"
            return _twiml(twilio.hang_up() if ended else twilio.say_and_hang_up(conversation.language, SORRY))


async def _streamed(
    req: func.HttpRequest,
    svc: Services,
    conversation: Conversation,
    request_id: str,
    step: twilio.ReplyStep,
    *,
    client: df.DurableOrchestrationClient,
    known: TurnRecord | None = None,
) -> str:
    """TwiML for the reply from `step.sentence` on: the sentences spoken by now and a redirect for the
    rest, or, once the reply is done, its last sentences and what the turn does next. A reply that was
    never streamed (`known` already, or its stream gone) plays whole. Nothing by the deadline: a filler
    and a redirect to the same sentence.

    An orchestration that dies meanwhile is noticed within INSTANCE_CHECK_SECONDS (`watch_instance`
    closes its conversation, which ends the wait), so the caller hears the apology at once, not after
    MAX_HOLDS fillers."""
    from shared.storage.reply_stream import StreamedReply

    watching = asyncio.create_task(watch_instance(svc, client, conversation.id))
    try:
        found, step = await _next_sentences(svc, conversation.id, request_id, step, known)
    finally:
        watching.cancel()
    if found is None:
        if step.wait >= twilio.MAX_HOLDS:
            log.warning("reply %s: sentence %d not spoken after %d fillers", request_id, step.sentence, step.wait)
            return twilio.say_and_hang_up(conversation.language, SORRY)
        waiting = step.model_copy(update={"wait": step.wait + 1})
        return twilio.hold_on(_reply_url(req, svc, waiting), conversation.language, FILLER)
    if not isinstance(found, StreamedReply):
        whole = [audio_url(req, svc, conversation.id, found.turn, rate=twilio.PHONE_RATE)] if step.sentence == 0 else []
        return _then(req, svc, conversation, found, whole, gather_turn=step.turn + 1)
    audio = [
        audio_url(req, svc, conversation.id, found.turn, sentence=s.index, rate=twilio.PHONE_RATE)
        for s in found.sentences[step.sentence :]
    ]
    if found.done is None:
        later = step.model_copy(update={"sentence": len(found.sentences), "wait": 0})
        return twilio.play_then(audio, _reply_url(req, svc, later))
    return _then(req, svc, conversation, TurnRecord.model_validate(found.done), audio, gather_turn=step.turn + 1)


async def _next_sentences(
    svc: Services, conversation_id: str, request_id: str, step: twilio.ReplyStep, known: TurnRecord | None
) -> tuple[StreamedReply | TurnRecord | None, twilio.ReplyStep]:
    """The reply's stream once it has a sentence past those played (or is done), waited for up to
    PHONE_REPLY_DEADLINE_SECONDS; the stored turn (`known`, its hand-off copy, or the database's) for a
    reply with no stream; None at the deadline.

    A stream restarted since (a retried attempt) is played from its first sentence again: the step
    returned says where playing resumes. A conversation that ended first is an error (`_unanswered`)."""
    from shared.storage.handoff import ConversationEnded
    from shared.storage.reply_stream import POLL_SECONDS

    deadline = time.monotonic() + svc.settings.phone_reply_deadline_seconds
    turn = await svc.reply_streams.turn_of(conversation_id, request_id)
    while turn is None:
        if known is not None:
            return known, step
        stored = await svc.waiter.stored_reply(conversation_id, request_id)
        if stored is not None:
            return TurnRecord.model_validate(stored), step
        outcome = await svc.waiter.ended(conversation_id)
        if outcome is not None:
            raise _unanswered(outcome)
        if time.monotonic() >= deadline:  # or answered so long ago that only the database has it
            return await earlier_turn(svc, conversation_id, request_id), step
        await asyncio.sleep(POLL_SECONDS)
        turn = await svc.reply_streams.turn_of(conversation_id, request_id)
    while True:
        at = step

        def ready(reply: StreamedReply, at: twilio.ReplyStep = at) -> bool:
            return reply.attempt > at.attempt or len(reply.sentences) > at.sentence or reply.done is not None

        try:
            found, held = await svc.reply_streams.wait(conversation_id, turn, ready, deadline - time.monotonic())
        except ConversationEnded as ended:
            raise _unanswered(ended.outcome) from ended
        if found.attempt > step.attempt:
            step = step.model_copy(update={"attempt": found.attempt, "sentence": 0})
            continue
        return (found if held else None), step


def _unanswered(outcome: str) -> ApiError:
    """Why a reply will never come: its conversation failed or was terminated on our side (the caller
    hears an apology), or ended otherwise (hung up, or the agent's own end: the call just hangs up)."""
    if outcome in (Outcome.FAILED, Outcome.TERMINATED):
        return TurnFailed(f"The conversation ended ({outcome}) before this turn was answered.")
    return Conflict(f"The conversation ended ({outcome}) before this turn was answered.", code="conversation_completed")


async def _silence(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    step: twilio.GatherStep,
) -> str:
    """Nothing heard: the agent's re-prompt, up to MAX_SILENCES in a row, then the call ends."""
    if step.silences >= svc.settings.max_silences:
        await request_end(svc, client, conversation)
        return twilio.hang_up()
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent))
    words = profile.reprompt if profile is not None else "Are you still there?"
    again = step.model_copy(update={"silences": step.silences + 1})
    return twilio.prompt_again(_gather_url(req, svc, again), conversation.language, words)


@bp.route(route="voice/twilio/status", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def twilio_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The call's status changed: once it is over (hung up, busy, failed, unanswered, canceled), the
    conversation ends with that outcome and keeps the call's duration; again, or for a call we never
    started, is no error. An agent that ended the call first keeps its own outcome."""
    svc, form = await _verified(req)
    duration = twilio.call_duration(form)
    outcome = twilio.ENDED_STATUSES.get(form.get("CallStatus"))
    routed = await route_for_number(form.get("To"), CHANNEL)
    if routed is not None and outcome is not None:
        await call_over(svc, client, routed[0], _start_key(form.call_sid), outcome=outcome, duration=duration)
    return func.HttpResponse(status_code=204)
