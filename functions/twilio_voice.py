"""Twilio Programmable Voice webhooks: a phone call is a conversation, each webhook one step of it.

`incoming` starts the conversation (one per CallSid) and plays the greeting as replies play (below),
then listens in a `<Gather>`;
Twilio recognises the caller's speech and posts it to `gather`, which takes the turn and plays the
reply's first sentence as soon as it is spoken, then redirects to `reply`, which plays the sentences
spoken since and redirects again until the reply is done, then listens in the next `<Gather>`;
`status` ends the conversation when the call is over. The gather URL carries the turn's number and
each redirect the next sentence's, so a Twilio retry is the same turn and the same sentence.

A call we placed (`POST /api/calls`, Direction `outbound-api`) is answered at `incoming` too, once
answering-machine detection has decided: a person is greeted the same way, a machine hears the agent's
voicemail message or is hung up on. A call whose agent records calls says the consent line, then
starts recording; `recording` keeps the finished recording with the conversation.

No API key here: every webhook must carry Twilio's signature (`X-Twilio-Signature`), checked before
anything else happens, and runs in the tenant of our number on the call: the one called, or for a call
we placed the one it comes from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from functions.auth import check_webhook_address
from functions.conversation import ANSWERED_EVENT, GREETING_REQUEST_ID
from functions.conversation_flow import (
    START_KEY_TTL_SECONDS,
    app_services,
    audio_url,
    load_conversation,
    remaining_wait,
    request_end,
    start_once,
)
from functions.http import json_errors, origin
from functions.phone_calls import FILLER, NOT_IN_SERVICE, SORRY, call_over, route_for_number
from functions.phone_replies import cut_short, next_sentences, raise_after_cut
from shared import dialog
from shared.errors import ApiError, BadRequest, Forbidden, ServiceUnavailable
from shared.models import Answered, Outcome, PhoneListening, TurnAction, TurnRecord
from shared.phone import twilio
from shared.tenancy import current_tenant, tenant_scope

if TYPE_CHECKING:
    from shared.services import Services
    from shared.storage.conversations import Conversation

bp = df.Blueprint()
log = logging.getLogger(__name__)

CHANNEL = "twilio"
INCOMING_ROUTE = "/api/voice/twilio/incoming"
GATHER_ROUTE = "/api/voice/twilio/gather"
REPLY_ROUTE = "/api/voice/twilio/reply"
STATUS_ROUTE = "/api/voice/twilio/status"
RECORDING_ROUTE = "/api/voice/twilio/recording"


def _our_number(form: twilio.CallForm) -> str:
    """The tenant's number on this call: the one called (`To`), or for a call we placed (Direction
    `outbound-api`) the one it comes from (`From`)."""
    return form.get("From") if twilio.is_outbound(form) else form.get("To")


def call_key(call_sid: str) -> str:
    """The start key of the call's conversation: one conversation per CallSid, whoever placed the call."""
    return f"twilio:{call_sid}"


def _request_id(call_sid: str, turn: int) -> str:
    """The request a turn of the call is: turn 0, the greeting, is the conversation's own; a caller's
    turn is the CallSid's and its number, so a retried webhook is the same request."""
    return GREETING_REQUEST_ID if turn == 0 else f"{call_key(call_sid)}:{turn}"


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
    query = f"turn={step.turn}&silences={step.silences}&wait={step.wait}" + (f"&cut={step.cut}" if step.cut else "")
    return f"{origin(req, svc.settings.public_base_url)}{GATHER_ROUTE}?{query}"


def _reply_url(req: func.HttpRequest, svc: Services, step: twilio.ReplyStep) -> str:
    query = f"turn={step.turn}&sentence={step.sentence}&attempt={step.attempt}&wait={step.wait}"
    return f"{origin(req, svc.settings.public_base_url)}{REPLY_ROUTE}?{query}"


async def _then(
    req: func.HttpRequest,
    svc: Services,
    conversation: Conversation,
    turn: TurnRecord,
    sentences: list[twilio.Sentence],
    *,
    gather_turn: int,
    listening: PhoneListening,
) -> str:
    """The reply's last sentences, then the call listens for the caller's turn `gather_turn`, as its agent
    listens, or is transferred or hung up (the agent's last words are not interrupted)."""
    audio = [sentence.audio_url for sentence in sentences]
    if turn.action is TurnAction.END_CALL:
        return twilio.finish(audio)
    if turn.action is TurnAction.TRANSFER:
        return twilio.finish(audio, turn.transfer_to)
    step = twilio.GatherStep(turn=gather_turn)
    return twilio.listen(_gather_url(req, svc, step), conversation.language, *sentences, listening=listening)


async def _listening(svc: Services, conversation: Conversation) -> PhoneListening:
    """How the conversation's agent listens (its speech model, end of a turn, barge-in)."""
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent, include_deleted=True))
    return profile.phone if profile is not None else PhoneListening()


@bp.route(route="voice/twilio/incoming", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def twilio_incoming(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """A call arrives: start its conversation once (a retry finds the same one) and play the greeting
    (turn 0) sentence by sentence, as `_streamed` plays a reply.

    `wait` is a filler's count in a redirect written before the greeting went through the reply route."""
    from shared.turn_requests import StartConversation

    svc, form = await _verified(req)
    if twilio.is_outbound(form):
        return await _answered(req, svc, client, form)
    holding = twilio.our_query(twilio.Holding, dict(req.params))
    routed = await route_for_number(_our_number(form), CHANNEL)
    if routed is None:
        return _twiml(twilio.say_and_hang_up("en-US", NOT_IN_SERVICE))
    tenant, agent = routed
    with tenant_scope(tenant):
        key = call_key(form.call_sid)
        claimed, _ = await start_once(svc, client, key, StartConversation(agent=agent), CHANNEL)
        conversation = await load_conversation(svc, claimed)
        return await _opening(req, svc, client, conversation, form.call_sid, wait=holding.wait)


async def _answered(
    req: func.HttpRequest, svc: Services, client: df.DurableOrchestrationClient, form: twilio.CallForm
) -> func.HttpResponse:
    """A call we placed was answered (the answer URL names its conversation; Twilio signed it): tell the
    conversation who picked up, as AMD's `AnsweredBy` says, then greet a person, leave the agent's
    voicemail message on a machine, or hang up on it. A retry tells again, which changes nothing."""
    step = twilio.our_query(twilio.Answering, dict(req.params))
    if step.call is None:
        raise BadRequest("A call we placed is answered at the URL that names its conversation.", code="malformed_query")
    routed = await route_for_number(_our_number(form), CHANNEL)
    if routed is None:
        return _twiml(twilio.hang_up())
    with tenant_scope(routed[0]):
        conversation_id = str(step.call)
        if await svc.waiter.claim_start(call_key(form.call_sid), conversation_id, START_KEY_TTL_SECONDS) != (
            conversation_id
        ):
            raise BadRequest("This call has another conversation.", code="malformed_query")
        conversation = await load_conversation(svc, conversation_id)
        profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent))
        answered = Answered(
            machine=twilio.answered_by_machine(form.get("AnsweredBy")),
            leave_message=bool(profile is not None and profile.voicemail_message),
        )
        if step.wait == 0:
            try:
                await client.raise_event(conversation.id, ANSWERED_EVENT, answered.model_dump())
            except Exception:
                log.warning("call %s: answered after its conversation ended", form.call_sid)
                return _twiml(twilio.hang_up())
        decision = dialog.on_answer(answered)
        if decision.step is dialog.Step.HANG_UP:
            return _twiml(twilio.hang_up())
        greets = decision.step is dialog.Step.GREET
        return await _opening(req, svc, client, conversation, form.call_sid, wait=step.wait, greets=greets)


async def _opening(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    call_sid: str,
    *,
    wait: int,
    greets: bool = True,
) -> func.HttpResponse:
    """The call's first words, played as replies are (sentence by sentence, then the first `<Gather>`):
    the greeting, or on a machine that took a call we placed the agent's voicemail message (the same
    opening turn, whose action ends the call). A person's call whose agent records calls hears the
    consent line first, then recording starts."""
    opening = twilio.ReplyStep(turn=0, wait=wait)
    try:
        twiml = await _streamed(req, svc, conversation, GREETING_REQUEST_ID, opening, client=client)
    except ApiError as error:
        log.warning("call %s: no opening (%s)", call_sid, error.code)
        return _twiml(twilio.say_and_hang_up(conversation.language, SORRY))
    recording = await _recording(req, svc, conversation, call_sid) if greets and wait == 0 else None
    return _twiml(twiml if recording is None else twilio.recorded(twiml, recording, conversation.language))


async def _recording(
    req: func.HttpRequest, svc: Services, conversation: Conversation, call_sid: str
) -> twilio.Recording | None:
    """How the call is recorded, if its agent records calls; the call is noted as this tenant's, since
    the recording's callback names only the call."""
    from shared.storage.placed_calls import PlacedCalls

    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent))
    if profile is None or not profile.recording or not profile.recording_consent:
        return None
    placed = PlacedCalls(svc.async_redis, svc.settings.redis_key_prefix)
    await placed.remember_leg(CHANNEL, call_sid, current_tenant(), START_KEY_TTL_SECONDS)
    callback = f"{origin(req, svc.settings.public_base_url)}{RECORDING_ROUTE}"
    return twilio.Recording(consent=profile.recording_consent, callback=callback)


@bp.route(route="voice/twilio/gather", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def twilio_gather(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The caller spoke (or keyed, or kept silent): take that turn once and play the agent's reply,
    from its first sentence as soon as that is spoken (see `_streamed`).

    A gather marked `cut` is the caller speaking over a sentence of the reply before (barge-in): that
    reply keeps the sentences they had started hearing, then their turn is taken. A gather marked `wait`
    (written by TwiML before the reply route existed) waits for the same turn's reply and never raises
    another.
    """
    from pydantic import ValidationError

    from shared.turn_requests import TurnBody, TypedTurn

    received_at = time.time()
    svc, form = await _verified(req)
    step = twilio.our_query(twilio.GatherStep, dict(req.params))
    routed = await route_for_number(_our_number(form), CHANNEL)
    if routed is None:
        return _twiml(twilio.say_and_hang_up("en-US", NOT_IN_SERVICE))
    with tenant_scope(routed[0]):
        conversation_id = await svc.waiter.started(call_key(form.call_sid))
        if conversation_id is None:
            return _twiml(twilio.say_and_hang_up("en-US", SORRY))
        conversation = await load_conversation(svc, conversation_id)
        language = conversation.language
        request_id = _request_id(form.call_sid, step.turn)
        heard = form.get("SpeechResult").strip() or form.get("Digits").strip()
        known = None
        try:
            if heard and not step.wait:
                try:
                    body = TurnBody(text=TypedTurn(text=heard).text)
                except ValidationError as error:
                    raise BadRequest("SpeechResult or Digits is not usable text.", code="malformed_form") from error
            deadline = svc.settings.phone_reply_deadline_seconds
            if step.cut is not None and not step.wait:  # spoke over a sentence of the reply before
                cutting = remaining_wait(deadline, received_at) / 2
                await cut_short(svc, conversation.id, _request_id(form.call_sid, step.turn - 1), step.cut, cutting)
            if not step.wait and not heard:
                return _twiml(await _silence(req, svc, client, conversation, step))
            if not step.wait:
                budget = remaining_wait(deadline, received_at)
                known, _ = await raise_after_cut(
                    svc, client, conversation, request_id, body, received_at=received_at, wait_seconds=budget
                )
            reply = twilio.ReplyStep(turn=step.turn, wait=step.wait)
            waiting = remaining_wait(deadline, received_at)
            twiml = await _streamed(
                req, svc, conversation, request_id, reply, client=client, known=known, wait_seconds=waiting
            )
            return _twiml(twiml)
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
    routed = await route_for_number(_our_number(form), CHANNEL)
    if routed is None:
        return _twiml(twilio.say_and_hang_up("en-US", NOT_IN_SERVICE))
    with tenant_scope(routed[0]):
        conversation_id = await svc.waiter.started(call_key(form.call_sid))
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
    wait_seconds: float | None = None,
) -> str:
    """TwiML for the reply from `step.sentence` on (waited for up to `wait_seconds`, else
    PHONE_REPLY_DEADLINE_SECONDS): the sentences spoken by now and a redirect for the
    rest, or, once the reply is done, its last sentences and what the turn does next. A reply that was
    never streamed (`known` already, or its stream gone) plays whole. Nothing by the deadline: a filler
    and a redirect to the same sentence. An orchestration that dies meanwhile is apologised for at once
    (`next_sentences`), not after MAX_HOLDS fillers.

    With the agent's barge-in on, every sentence of a reply the call goes on after is one the caller may
    speak over: its gather's action is the next turn's gather, marked with the sentences heard so far."""
    from shared.storage.reply_stream import StreamedReply

    found, sentence, attempt = await next_sentences(
        svc,
        client,
        conversation.id,
        request_id,
        sentence=step.sentence,
        attempt=step.attempt,
        known=known,
        wait_seconds=svc.settings.phone_reply_deadline_seconds if wait_seconds is None else wait_seconds,
    )
    step = step.model_copy(update={"sentence": sentence, "attempt": attempt})
    if found is None:
        if step.wait >= twilio.MAX_HOLDS:
            log.warning("reply %s: sentence %d not spoken after %d fillers", request_id, step.sentence, step.wait)
            return twilio.say_and_hang_up(conversation.language, SORRY)
        waiting = step.model_copy(update={"wait": step.wait + 1})
        return twilio.hold_on(_reply_url(req, svc, waiting), conversation.language, FILLER)
    listening = await _listening(svc, conversation)
    if not isinstance(found, StreamedReply):
        whole = [audio_url(req, svc, conversation.id, found.turn, rate=twilio.PHONE_RATE)] if step.sentence == 0 else []
        sentences = [twilio.Sentence(url) for url in whole]
        return await _then(req, svc, conversation, found, sentences, gather_turn=step.turn + 1, listening=listening)
    interruptible = listening.barge_in and found.continues
    sentences = [
        twilio.Sentence(
            audio_url(req, svc, conversation.id, found.turn, sentence=s.index, rate=twilio.PHONE_RATE),
            _gather_url(req, svc, twilio.GatherStep(turn=step.turn + 1, cut=s.index + 1)) if interruptible else None,
        )
        for s in found.sentences[step.sentence :]
    ]
    if found.done is None:
        later = step.model_copy(update={"sentence": len(found.sentences), "wait": 0})
        return twilio.play_then(sentences, _reply_url(req, svc, later), conversation.language, listening)
    done = TurnRecord.model_validate(found.done)
    return await _then(req, svc, conversation, done, sentences, gather_turn=step.turn + 1, listening=listening)


async def _silence(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    step: twilio.GatherStep,
) -> str:
    """Nothing heard: the agent's re-prompt, up to MAX_SILENCES in a row, then the call ends."""
    if step.silences >= svc.settings.max_silences:
        await request_end(svc, client, conversation, Outcome.NO_RESPONSE)
        return twilio.hang_up()
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent))
    words = profile.reprompt if profile is not None else "Are you still there?"
    again = step.model_copy(update={"silences": step.silences + 1})
    listening = profile.phone if profile is not None else PhoneListening()
    return twilio.prompt_again(_gather_url(req, svc, again), conversation.language, words, listening)


@bp.route(route="voice/twilio/status", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def twilio_status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The call's status changed: once it is over (hung up, busy, failed, unanswered, canceled), the
    conversation ends with that outcome and keeps the call's duration; again, or for a call we never
    started, is no error. An agent that ended the call first keeps its own outcome."""
    svc, form = await _verified(req)
    placed = twilio.our_query(twilio.Answering, dict(req.params)).call
    duration = twilio.call_duration(form)
    outcome = twilio.ENDED_STATUSES.get(form.get("CallStatus"))
    routed = await route_for_number(_our_number(form), CHANNEL)
    if routed is not None and outcome is not None:
        if placed is not None:  # a call we placed (its status URL names it), maybe over before POST /api/calls noted it
            with tenant_scope(routed[0]):
                await svc.waiter.claim_start(call_key(form.call_sid), str(placed), START_KEY_TTL_SECONDS)
        await call_over(svc, client, routed[0], call_key(form.call_sid), outcome=outcome, duration=duration)
    return func.HttpResponse(status_code=204)


@bp.route(route="voice/twilio/recording", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def twilio_recording(req: func.HttpRequest) -> func.HttpResponse:
    """A call's recording is ready (`RecordingStatus` completed): fetch its WAV from Twilio and keep it with
    the conversation, once; a retried callback, another status, or a call we do not know is no error."""
    from shared.erasure import keep_recording
    from shared.phone.twilio_calls import download_recording
    from shared.storage.placed_calls import PlacedCalls

    svc, form = await _verified(req)
    settings = svc.settings
    if form.get("RecordingStatus") != "completed":
        return func.HttpResponse(status_code=204)
    seconds = twilio.recording_seconds(form)
    url = twilio.recording_media_url(form.get("RecordingUrl"), settings.twilio_api_base_url)
    tenant = await PlacedCalls(svc.async_redis, settings.redis_key_prefix).tenant_of_leg(CHANNEL, form.call_sid)
    if tenant is None or not settings.twilio_account_sid:
        log.warning("call %s: a recording of a call not recorded here, or no TWILIO_ACCOUNT_SID", form.call_sid)
        return func.HttpResponse(status_code=204)
    with tenant_scope(tenant):
        conversation_id = await svc.waiter.started(call_key(form.call_sid))
        if conversation_id is None:
            return func.HttpResponse(status_code=204)
        conversation = await load_conversation(svc, conversation_id)
        if conversation.recording_blob is not None:
            return func.HttpResponse(status_code=204)
        data = await asyncio.to_thread(
            lambda: download_recording(
                account_sid=settings.twilio_account_sid,
                auth_token=settings.twilio_auth_token.get_secret_value(),
                url=url,
            )
        )
        await asyncio.to_thread(lambda: keep_recording(svc, conversation.id, data, seconds))
    return func.HttpResponse(status_code=204)
