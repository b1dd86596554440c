"""Vonage Voice API webhooks: a phone call is a conversation, each webhook one step of it.

`answer` starts the conversation (one per call leg `uuid`) and plays the greeting as replies play
(below), then an `input` listens; Vonage recognises the caller's speech and posts it to `input`, whose
URL carries the turn's number, so a retried input webhook is the same turn, never a second one; `event`
ends the conversation when the call is over.

A reply plays sentence by sentence, from the first as soon as it is spoken: each NCCO streams the
sentences spoken so far, then an input that comes back to `reply` after a moment's silence for the next
ones (Vonage has no redirect, and a `stream` the caller may speak over must be followed by an `input`).
With the agent's barge-in on, an NCCO holds one sentence, the caller may speak over it, and the input
that hears them says which sentence they cut short: `reply` takes their turn, once, and the reply keeps
what they heard. The last sentences are followed by the input of the caller's next turn.

The call leg's `uuid`, not `conversation_uuid`, keys the conversation: it is the caller's leg our NCCO
talks to, while a transfer's `connect` adds another leg to the same Vonage conversation, whose events
must not touch ours.

A call we placed (`POST /api/calls`) is answered at `answer` too (its URL names its conversation), after
machine detection's verdict has come to `event`: a person is greeted the same way, a machine hears the
agent's voicemail message or nothing.

No API key here: every webhook must carry Vonage's signed JWT, checked before anything else happens, and
runs in the tenant its called number belongs to, or for a call we placed the tenant that placed it.
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
from functions.conversation import ANSWERED_EVENT, GREETING_REQUEST_ID
from functions.conversation_flow import (
    START_KEY_TTL_SECONDS,
    app_services,
    audio_url,
    load_conversation,
    raise_once,
    remaining_wait,
    request_end,
    start_once,
)
from functions.http import json_errors, origin
from functions.phone_calls import FILLER, NOT_IN_SERVICE, SORRY, call_over, route_for_number
from functions.phone_replies import cut_short, next_sentences, raise_after_cut
from shared import dialog
from shared.errors import ApiError, BadRequest, Forbidden, GatewayTimeout, ServiceUnavailable
from shared.models import Answered, Outcome, PhoneListening, TurnAction, TurnRecord
from shared.phone import vonage
from shared.phone.twilio import PHONE_RATE
from shared.tenancy import current_tenant, tenant_scope

if TYPE_CHECKING:
    from shared.services import Services
    from shared.storage.conversations import Conversation
    from shared.turn_requests import TurnBody

bp = df.Blueprint()
log = logging.getLogger(__name__)

CHANNEL = "vonage"
ANSWER_ROUTE = "/api/voice/vonage/answer"
INPUT_ROUTE = "/api/voice/vonage/input"
REPLY_ROUTE = "/api/voice/vonage/reply"
EVENT_ROUTE = "/api/voice/vonage/event"
RECORDING_ROUTE = "/api/voice/vonage/recording"
RECORDED = "vonage-conversation"
"""What a recorded call is noted by: its Vonage conversation (`CON-…`), the one id a recording event names."""


def call_key(call_uuid: str) -> str:
    """The start key of the call leg's conversation: one conversation per leg uuid, whoever placed the call."""
    return f"vonage:{call_uuid}"


def _e164(number: str) -> str:
    """Vonage writes numbers without the `+` (`447700900000`); the phone numbers are E.164."""
    return number if number.startswith("+") or not number.isdigit() else f"+{number}"


async def _route(svc: Services, hook: vonage.Webhook) -> tuple[str, str, str] | None:
    """The call's tenant, agent and our number on it: for a call we placed (its leg noted when placed) the
    tenant that placed it and the number it comes from (`from`; its conversation knows the agent), else
    the called number's (`to`, the phone numbers of the admin API); None: not in service."""
    from shared.storage.placed_calls import PlacedCalls

    placed = PlacedCalls(svc.async_redis, svc.settings.redis_key_prefix)
    tenant = await placed.tenant_of_leg(CHANNEL, hook.call.uuid)
    if tenant is not None:
        return tenant, "", hook.call.from_
    routed = await route_for_number(_e164(hook.call.to), CHANNEL)
    return None if routed is None else (routed[0], routed[1], hook.call.to)


async def _verdict(
    svc: Services, client: df.DurableOrchestrationClient, conversation: Conversation, answered: Answered
) -> Answered:
    """Who answered the call we placed, as first told: machine detection's event, or the answer webhook
    when no verdict came before it (a person). The first one is raised on the conversation; later ones
    change nothing."""
    told = answered.model_dump_json()
    first = await svc.waiter.claim_start(f"answered:{conversation.id}", told, START_KEY_TTL_SECONDS)
    if first == told:
        try:
            await client.raise_event(conversation.id, ANSWERED_EVENT, answered.model_dump())
        except Exception:
            log.warning("conversation %s: answered after it ended", conversation.id)
    return Answered.model_validate_json(first)


async def _leaves_message(svc: Services, conversation: Conversation) -> bool:
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent))
    return bool(profile is not None and profile.voicemail_message)


def _ncco(actions: list[dict[str, Any]]) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(actions), status_code=200, mimetype=vonage.JSON_TYPE, headers={"Cache-Control": "no-store"}
    )


async def _verified(req: func.HttpRequest) -> tuple[Services, vonage.Webhook]:
    """The webhook, once Vonage's signature over it holds and its token was not used for another request
    (a replay): 503 unconfigured, 4xx otherwise (429 first for a flood from one address)."""
    svc, secret = await _configured(req)
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
        await _first_use(svc, req, hook.signed)
    except Forbidden:
        log.warning("refused a Vonage webhook to %s: signature, application or a replayed token", url.path)
        raise
    return svc, hook


async def _configured(req: func.HttpRequest) -> tuple[Services, str]:
    """The services and the signature secret, once the caller's address is within its limit; 503 unconfigured."""
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
    return svc, secret


async def _first_use(svc: Services, req: func.HttpRequest, signed: vonage.Signed) -> None:
    """Forbidden unless the token is for our application and this is the first request it signs."""
    from shared.storage.webhook_tokens import request_fingerprint

    settings = svc.settings
    if settings.vonage_application_id and signed.application_id != settings.vonage_application_id:
        raise Forbidden("The webhook is for another Vonage application.", code="invalid_signature")
    url = urlsplit(req.url)
    fingerprint = request_fingerprint(req.method, url.path, url.query, signed.payload_hash)
    if not await svc.webhook_tokens.first_use(signed.token_id, fingerprint, vonage.MAX_TOKEN_AGE_SECONDS):
        raise Forbidden("This Vonage token was used for another request.", code="invalid_signature")


def _input_url(req: func.HttpRequest, svc: Services, step: vonage.InputStep) -> str:
    query = f"turn={step.turn}&silences={step.silences}&wait={step.wait}"
    return f"{origin(req, svc.settings.public_base_url)}{INPUT_ROUTE}?{query}"


def _reply_url(req: func.HttpRequest, svc: Services, step: vonage.ReplyStep) -> str:
    query = f"turn={step.turn}&sentence={step.sentence}&attempt={step.attempt}&wait={step.wait}"
    return f"{origin(req, svc.settings.public_base_url)}{REPLY_ROUTE}?{query}"


def _request_id(call_uuid: str, turn: int) -> str:
    """The request a turn of the call is: turn 0, the greeting, is the conversation's own; a caller's turn
    is the leg's and its number, so a retried webhook is the same request."""
    return GREETING_REQUEST_ID if turn == 0 else f"{call_key(call_uuid)}:{turn}"


async def _listening(svc: Services, conversation: Conversation) -> PhoneListening:
    """How the conversation's agent listens (barge-in, on Vonage)."""
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent, include_deleted=True))
    return profile.phone if profile is not None else PhoneListening()


def _after(
    req: func.HttpRequest,
    svc: Services,
    conversation: Conversation,
    turn: TurnRecord,
    audio: list[str],
    *,
    called: str,
    listening: PhoneListening,
) -> list[dict[str, Any]]:
    """The reply's last sentences, then the call listens for the next turn, or is connected onward or ends."""
    if turn.action is TurnAction.END_CALL:
        return vonage.finish(audio)
    if turn.action is TurnAction.TRANSFER:
        return vonage.finish(audio, turn.transfer_to, called)
    listens = _input_url(req, svc, vonage.InputStep(turn=turn.turn + 1))
    return vonage.listen(listens, conversation.language, audio, barge_in=listening.barge_in)


async def _streamed(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    *,
    request_id: str,
    step: vonage.ReplyStep,
    called: str,
    received_at: float,
    known: TurnRecord | None = None,
) -> list[dict[str, Any]]:
    """The NCCO for the reply from `step.sentence` on, once it has a sentence past those played (or is
    done), waited for up to PHONE_REPLY_DEADLINE_SECONDS (at most MAX_WAIT_SECONDS, from the webhook's
    arrival); GatewayTimeout after it. A reply never streamed (`known`, or its stream gone) plays whole."""
    from shared.storage.reply_stream import StreamedReply

    deadline = min(svc.settings.phone_reply_deadline_seconds, vonage.MAX_WAIT_SECONDS)
    found, sentence, attempt = await next_sentences(
        svc,
        client,
        conversation.id,
        request_id,
        sentence=step.sentence,
        attempt=step.attempt,
        known=known,
        wait_seconds=remaining_wait(deadline, received_at),
    )
    if found is None:
        raise GatewayTimeout(f"Sentence {sentence} of the reply is not spoken yet.")
    listening = await _listening(svc, conversation)
    if not isinstance(found, StreamedReply):
        whole = [audio_url(req, svc, conversation.id, found.turn, rate=PHONE_RATE)] if sentence == 0 else []
        return _after(req, svc, conversation, found, whole, called=called, listening=listening)
    audio = [
        audio_url(req, svc, conversation.id, found.turn, sentence=s.index, rate=PHONE_RATE)
        for s in found.sentences[sentence:]
    ]
    barge_in = listening.barge_in and found.continues
    if found.done is not None and (not barge_in or len(audio) <= 1):
        done = TurnRecord.model_validate(found.done)
        return _after(req, svc, conversation, done, audio, called=called, listening=listening)
    played = audio[:1] if barge_in else audio
    later = vonage.ReplyStep(turn=step.turn, sentence=sentence + len(played), attempt=attempt)
    return vonage.speak_on(played, _reply_url(req, svc, later), conversation.language, barge_in=barge_in)


@bp.route(route="voice/vonage/answer", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def vonage_answer(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """A call is answered: start its conversation once (a retry finds the same one) and greet.

    A greeting late past PHONE_REPLY_DEADLINE_SECONDS (at most MAX_WAIT_SECONDS: Vonage wants the NCCO
    in 5 s) gets a filler and an input that comes back here (POST, `wait`), since Vonage has no redirect."""
    from shared.turn_requests import StartConversation

    received_at = time.time()
    svc, hook = await _verified(req)
    if "call" in hook.ours:
        return await _answered(req, svc, client, hook, received_at=received_at)
    holding = vonage.our_query(vonage.Holding, hook.ours)
    called = hook.call.to
    routed = await route_for_number(_e164(called), CHANNEL)
    if routed is None:
        return _ncco(vonage.say_and_hang_up("en-US", NOT_IN_SERVICE))
    tenant, agent = routed
    with tenant_scope(tenant):
        key = call_key(hook.call.uuid)
        claimed, _ = await start_once(svc, client, key, StartConversation(agent=agent), CHANNEL)
        conversation = await load_conversation(svc, claimed)
        back = f"{origin(req, svc.settings.public_base_url)}{ANSWER_ROUTE}?wait={holding.wait + 1}"
        return await _opening(
            req, svc, client, conversation, hook, wait=holding.wait, back=back, ours=called, received_at=received_at
        )


async def _answered(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    hook: vonage.Webhook,
    *,
    received_at: float,
) -> func.HttpResponse:
    """A call we placed was answered (machine detection has run: Vonage asks for the NCCO after it): greet
    a person, leave the agent's voicemail message on a machine, or end the call."""
    step = vonage.our_query(vonage.Answering, hook.ours)
    route = await _route(svc, hook)
    if route is None:
        return _ncco([])
    with tenant_scope(route[0]):
        conversation_id = str(step.call)
        key = call_key(hook.call.uuid)
        if await svc.waiter.claim_start(key, conversation_id, START_KEY_TTL_SECONDS) != conversation_id:
            raise BadRequest("This call has another conversation.", code="malformed_query")
        conversation = await load_conversation(svc, conversation_id)
        person = Answered(machine=False, leave_message=await _leaves_message(svc, conversation))
        decision = dialog.on_answer(await _verdict(svc, client, conversation, person))
        if decision.step is dialog.Step.HANG_UP:
            return _ncco([])
        back = f"{origin(req, svc.settings.public_base_url)}{ANSWER_ROUTE}?call={step.call}&wait={step.wait + 1}"
        greets = decision.step is dialog.Step.GREET
        return await _opening(
            req,
            svc,
            client,
            conversation,
            hook,
            wait=step.wait,
            back=back,
            ours=route[2],
            greets=greets,
            received_at=received_at,
        )


async def _opening(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    hook: vonage.Webhook,
    *,
    wait: int,
    back: str,
    ours: str,
    received_at: float,
    greets: bool = True,
) -> func.HttpResponse:
    """The call's first words (the greeting, or on a machine that took a call we placed the voicemail
    message), played as replies are (`_streamed`); not spoken by the deadline: a filler and an input that
    comes back to `back`, up to MAX_HOLDS times. A person's call whose agent records calls hears the
    consent line first, then the whole call is recorded, however many fillers came before: this NCCO
    is answered once per call, since the call then moves on to its inputs."""
    opening = vonage.ReplyStep(turn=0, wait=wait)
    try:
        ncco = await _streamed(
            req,
            svc,
            client,
            conversation,
            request_id=GREETING_REQUEST_ID,
            step=opening,
            called=ours,
            received_at=received_at,
        )
    except GatewayTimeout:
        if wait >= vonage.MAX_HOLDS:
            log.warning("conversation %s: no opening after %d fillers", conversation.id, wait)
            return _ncco(vonage.say_and_hang_up(conversation.language, SORRY))
        return _ncco(vonage.hold_on(back, conversation.language, FILLER))
    except ApiError as error:
        log.warning("conversation %s: no opening (%s)", conversation.id, error.code)
        return _ncco(vonage.say_and_hang_up(conversation.language, SORRY))
    consent = await _recording_consent(svc, conversation, hook) if greets else None  # fillers or not: given once
    if consent is None:
        return _ncco(ncco)
    event_url = f"{origin(req, svc.settings.public_base_url)}{RECORDING_ROUTE}"
    return _ncco(vonage.recorded(ncco, consent, conversation.language, event_url))


async def _recording_consent(svc: Services, conversation: Conversation, hook: vonage.Webhook) -> str | None:
    """The agent's consent line if it records calls, else None. The recording's event names only the
    Vonage conversation, so that is noted as this tenant's and this conversation's first."""
    from shared.storage.placed_calls import PlacedCalls

    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(conversation.agent))
    vonage_conversation = hook.call.conversation_uuid
    if profile is None or not profile.recording or not profile.recording_consent or not vonage_conversation:
        return None
    placed = PlacedCalls(svc.async_redis, svc.settings.redis_key_prefix)
    await placed.remember_leg(RECORDED, vonage_conversation, current_tenant(), START_KEY_TTL_SECONDS)
    await svc.waiter.claim_start(f"{RECORDED}:{vonage_conversation}", conversation.id, START_KEY_TTL_SECONDS)
    return profile.recording_consent


@bp.route(route="voice/vonage/input", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def vonage_input(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The caller spoke (or keyed, or kept silent): take that turn once and play the agent's reply, from its
    first sentence as soon as that is spoken (see `_streamed`).

    An input marked `wait` (a filler's, written before the reply route existed) waits for the same turn's
    reply and never raises another.
    """
    received_at = time.time()
    svc, hook = await _verified(req)
    step = vonage.our_query(vonage.InputStep, hook.ours)
    routed = await _route(svc, hook)
    if routed is None:
        return _ncco(vonage.say_and_hang_up("en-US", NOT_IN_SERVICE))
    with tenant_scope(routed[0]):
        conversation_id = await svc.waiter.started(call_key(hook.call.uuid))
        if conversation_id is None:
            return _ncco(vonage.say_and_hang_up("en-US", SORRY))
        conversation = await load_conversation(svc, conversation_id)
        request_id = _request_id(hook.call.uuid, step.turn)
        heard = hook.call.heard()
        try:
            if not step.wait and not heard:
                return _ncco(await _silence(req, svc, client, conversation, step))
            known = None
            if not step.wait:
                body = _utterance(heard)
                known, _ = await raise_once(svc, client, conversation, request_id, body, received_at=received_at)
            reply = vonage.ReplyStep(turn=step.turn, wait=step.wait)
            played = await _play(
                req,
                svc,
                client,
                conversation,
                request_id=request_id,
                step=reply,
                called=routed[2],
                received_at=received_at,
                known=known,
            )
            return _ncco(played)
        except BadRequest:
            raise
        except ApiError as error:
            log.warning("call %s: turn %d not taken (%s)", hook.call.uuid, step.turn, error.code)
            ended = error.code == "conversation_completed"
            return _ncco([] if ended else vonage.say_and_hang_up(conversation.language, SORRY))


@bp.route(route="voice/vonage/reply", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def vonage_reply(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """The input after a sentence of a reply (our own NCCO's, signed by Vonage like every webhook): silence
    plays the next sentences; words are the caller's next turn, spoken over the reply (barge-in), which
    keeps the sentences they had started hearing. Their turn is taken once, however often Vonage retries."""
    received_at = time.time()
    svc, hook = await _verified(req)
    step = vonage.our_query(vonage.ReplyStep, hook.ours)
    routed = await _route(svc, hook)
    if routed is None:
        return _ncco(vonage.say_and_hang_up("en-US", NOT_IN_SERVICE))
    with tenant_scope(routed[0]):
        conversation_id = await svc.waiter.started(call_key(hook.call.uuid))
        if conversation_id is None:
            return _ncco(vonage.say_and_hang_up("en-US", SORRY))
        conversation = await load_conversation(svc, conversation_id)
        request_id = _request_id(hook.call.uuid, step.turn)
        heard = hook.call.heard()
        try:
            if heard and not (await _listening(svc, conversation)).barge_in:
                heard = ""  # a caller who may not cut in is not heard before the reply is over (as on Twilio)
            if not heard or step.wait or not step.sentence:
                played = await _play(
                    req,
                    svc,
                    client,
                    conversation,
                    request_id=request_id,
                    step=step,
                    called=routed[2],
                    received_at=received_at,
                )
                return _ncco(played)
            body = _utterance(heard)
            deadline = min(svc.settings.phone_reply_deadline_seconds, vonage.MAX_WAIT_SECONDS)
            cutting = remaining_wait(deadline, received_at) / 2
            await cut_short(svc, conversation.id, request_id, step.sentence, cutting)
            next_request = _request_id(hook.call.uuid, step.turn + 1)
            budget = remaining_wait(deadline, received_at)
            known, _ = await raise_after_cut(
                svc, client, conversation, next_request, body, received_at=received_at, wait_seconds=budget
            )
            answer = vonage.ReplyStep(turn=step.turn + 1)
            played = await _play(
                req,
                svc,
                client,
                conversation,
                request_id=next_request,
                step=answer,
                called=routed[2],
                received_at=received_at,
                known=known,
            )
            return _ncco(played)
        except BadRequest:
            raise
        except ApiError as error:
            log.warning("call %s: reply %d not played on (%s)", hook.call.uuid, step.turn, error.code)
            ended = error.code == "conversation_completed"
            return _ncco([] if ended else vonage.say_and_hang_up(conversation.language, SORRY))


def _utterance(heard: str) -> TurnBody:
    """The caller's words (or keys) as a turn's text; 400 if not usable text."""
    from pydantic import ValidationError

    from shared.turn_requests import TurnBody, TypedTurn

    try:
        return TurnBody(text=TypedTurn(text=heard).text)
    except ValidationError as error:
        raise BadRequest("The speech result or keys are not usable text.", code="malformed_body") from error


async def _play(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    *,
    request_id: str,
    step: vonage.ReplyStep,
    called: str,
    received_at: float,
    known: TurnRecord | None = None,
) -> list[dict[str, Any]]:
    """The reply from `step.sentence` on (`_streamed`); not spoken by the deadline: a filler and an input
    that comes back for the same sentence, up to MAX_HOLDS times, then an apology."""
    try:
        return await _streamed(
            req,
            svc,
            client,
            conversation,
            request_id=request_id,
            step=step,
            called=called,
            received_at=received_at,
            known=known,
        )
    except GatewayTimeout:
        if step.wait >= vonage.MAX_HOLDS:
            log.warning("reply %s: sentence %d not spoken after %d fillers", request_id, step.sentence, step.wait)
            return vonage.say_and_hang_up(conversation.language, SORRY)
        waiting = step.model_copy(update={"wait": step.wait + 1})
        return vonage.hold_on(_reply_url(req, svc, waiting), conversation.language, FILLER)


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
        await request_end(svc, client, conversation, Outcome.NO_RESPONSE)
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
    conversation ends with that outcome and keeps the call's `duration`; for a call we placed, machine
    detection's verdict (`human`, `machine`) tells the conversation who answered. Any other status,
    again, or for a call we never started, is no error. An agent that ended the call first keeps its
    own outcome."""
    svc, hook = await _verified(req)
    placed = vonage.our_query(vonage.PlacedEvents, hook.ours)
    status = hook.call.status
    outcome = vonage.ENDED_STATUSES.get(status)
    route = (placed.tenant, "", hook.call.from_) if placed.tenant is not None else await _route(svc, hook)
    if route is None:
        return func.HttpResponse(status_code=200)
    start = call_key(hook.call.uuid)
    if placed.call is not None:  # a call we placed, maybe reporting before POST /api/calls noted it
        with tenant_scope(route[0]):
            await svc.waiter.claim_start(start, str(placed.call), START_KEY_TTL_SECONDS)
    if outcome is not None:
        await call_over(svc, client, route[0], start, outcome=outcome, duration=hook.call.duration)
    elif status in vonage.VERDICTS:
        with tenant_scope(route[0]):
            conversation_id = await svc.waiter.started(start)
            if conversation_id is not None:
                conversation = await load_conversation(svc, conversation_id)
                told = Answered(machine=status == "machine", leave_message=await _leaves_message(svc, conversation))
                await _verdict(svc, client, conversation, told)
    return func.HttpResponse(status_code=200)


@bp.route(route="voice/vonage/recording", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def vonage_recording(req: func.HttpRequest) -> func.HttpResponse:
    """A recorded call's recording is ready (the `record` action's event): fetch it from Vonage with the
    application's JWT and keep it with the conversation, once; again, or a call not recorded here, is no error."""
    from shared.erasure import keep_recording
    from shared.phone.vonage_calls import download_recording, recording_url
    from shared.storage.placed_calls import PlacedCalls

    svc, secret = await _configured(req)
    try:
        recording, signed = vonage.verified_recording(
            secret, req.headers.get("content-type"), req.get_body(), authorization=req.headers.get("authorization")
        )
        await _first_use(svc, req, signed)
    except Forbidden:
        log.warning("refused a Vonage recording event: signature, application or a replayed token")
        raise
    settings = svc.settings
    url = recording_url(recording.recording_url, settings.vonage_api_host)
    placed = PlacedCalls(svc.async_redis, settings.redis_key_prefix)
    tenant = await placed.tenant_of_leg(RECORDED, recording.conversation_uuid)
    key = settings.vonage_private_key.get_secret_value()
    if tenant is None or not settings.vonage_application_id or not key:
        log.warning("a Vonage recording of a call not recorded here, or no VONAGE_PRIVATE_KEY to fetch it")
        return func.HttpResponse(status_code=204)
    with tenant_scope(tenant):
        conversation_id = await svc.waiter.started(f"{RECORDED}:{recording.conversation_uuid}")
        if conversation_id is None:
            return func.HttpResponse(status_code=204)
        conversation = await load_conversation(svc, conversation_id)
        if conversation.recording_blob is not None:
            return func.HttpResponse(status_code=204)
        data = await asyncio.to_thread(
            lambda: download_recording(
                application_id=settings.vonage_application_id,
                private_key=key,
                api_host=settings.vonage_api_host,
                url=url,
                size=recording.size,
            )
        )
        await asyncio.to_thread(lambda: keep_recording(svc, conversation.id, data, None))
    return func.HttpResponse(status_code=204)
