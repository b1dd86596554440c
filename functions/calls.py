"""Outbound calls: `POST /api/calls` has one of the tenant's agents phone a number (`calls:write`).

The conversation exists before the provider is asked, its orchestration waiting for the answer
(`ringing`), and the answer URL handed to the provider names it, so the answered webhook finds it
however soon it comes; the provider's call id then keys it like an inbound call (`twilio:{CallSid}`),
one conversation per call. A call never answered ends with the status callback's outcome (busy,
no_answer, call_failed, canceled), or `no_answer` once OUTBOUND_ANSWER_WAIT_SECONDS have passed
without a word from the provider.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from functions.auth import guarded
from functions.conversation_flow import START_KEY_TTL_SECONDS, app_services, begin, load_conversation, request_end
from functions.http import json_errors, model_response, origin
from functions.twilio_voice import INCOMING_ROUTE as TWILIO_INCOMING_ROUTE
from functions.twilio_voice import STATUS_ROUTE as TWILIO_STATUS_ROUTE
from functions.twilio_voice import call_key as twilio_call_key
from functions.vonage_voice import ANSWER_ROUTE as VONAGE_ANSWER_ROUTE
from functions.vonage_voice import EVENT_ROUTE as VONAGE_EVENT_ROUTE
from functions.vonage_voice import call_key as vonage_call_key
from shared.errors import ApiError, Conflict, ServiceUnavailable, Unprocessable
from shared.models import Outcome
from shared.security.roles import Scope
from shared.tenancy import current_tenant

if TYPE_CHECKING:
    from shared.call_models import CallRequest, PlacedCall
    from shared.phone.placing import PlacedCall as Placed
    from shared.services import Services
    from shared.storage.placed_calls import PlacedCalls

bp = df.Blueprint()
log = logging.getLogger(__name__)


def _placed_calls(svc: Services) -> PlacedCalls:
    from shared.storage.placed_calls import PlacedCalls

    return PlacedCalls(svc.async_redis, svc.settings.redis_key_prefix)


@bp.route(route="calls", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
@guarded(Scope.CALLS_WRITE)
async def place_call(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Phone `to` as `agent` through `provider`, from a number the tenant holds there; an Idempotency-Key
    makes a retry answer the same call (200, `replayed`) instead of ringing again."""
    from shared.call_models import CallRequest
    from shared.turn_requests import StartConversation, parse_json, request_id_for

    svc = app_services()
    request = parse_json(CallRequest, req.headers.get("content-type"), req.get_body())
    key = req.headers.get("idempotency-key")
    request_id = None if key is None else f"call:{request_id_for(key)}"
    _require_provider(svc, request.provider)
    profile = await asyncio.to_thread(lambda: svc.knowledge.get_agent(request.agent))
    if profile is None:
        raise Unprocessable(f"agent: no agent {request.agent!r}.", code="unknown_agent")
    caller_id = await asyncio.to_thread(_caller_id, svc, request)
    conversation_id = str(uuid.uuid4())
    if request_id is not None:
        claimed = await svc.waiter.claim_start(request_id, conversation_id, START_KEY_TTL_SECONDS)
        if claimed != conversation_id:
            return await _replayed(svc, claimed)
    try:
        await svc.rate_limits.check(calls_of=current_tenant())
        ringing = svc.settings.outbound_answer_wait_seconds
        await begin(
            svc,
            client,
            conversation_id,
            StartConversation(agent=profile.name),
            request.provider,
            ringing_seconds=ringing,
        )
        placed = await _ring(
            req,
            svc,
            client,
            conversation_id,
            request,
            caller_id=caller_id,
            leaves_voicemail=bool(profile.voicemail_message),
        )
    except BaseException:
        if request_id is not None:  # nothing rang: a retry may try again
            await svc.waiter.release_start(request_id, conversation_id)
        raise
    await _keep(svc, placed)
    return model_response(placed, status=201, headers={"Location": f"/api/conversations/{conversation_id}"})


async def _keep(svc: Services, placed: PlacedCall) -> None:
    """Note a call the provider has placed: first for a retry of this request (which must answer it, never
    ring again), then its call id as the conversation's and the tenant's. The phone is ringing whatever
    fails here, so a failure is logged, never raised: the client is told about the call it made, and the
    answered webhook finds its conversation by the id in its URL."""
    key = twilio_call_key(placed.call_id) if placed.provider == "twilio" else vonage_call_key(placed.call_id)
    try:
        await _placed_calls(svc).remember(placed, START_KEY_TTL_SECONDS)
        await svc.waiter.claim_start(key, placed.conversation_id, START_KEY_TTL_SECONDS)
        await _placed_calls(svc).remember_leg(placed.provider, placed.call_id, current_tenant(), START_KEY_TTL_SECONDS)
    except Exception:
        log.exception("outbound call %s of %s placed, but not noted", placed.call_id, placed.conversation_id)


def _require_provider(svc: Services, provider: str) -> None:
    """503 unless the provider can place calls: its REST credentials, and signed audio links to play."""
    settings = svc.settings
    if provider == "twilio":
        configured = bool(settings.twilio_account_sid and settings.twilio_auth_token.get_secret_value())
        needs = "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    else:
        configured = bool(
            settings.vonage_application_id
            and settings.vonage_private_key.get_secret_value()
            and settings.vonage_signature_secret.get_secret_value()
        )
        needs = "VONAGE_APPLICATION_ID, VONAGE_PRIVATE_KEY and VONAGE_SIGNATURE_SECRET"
    if not configured:
        raise ServiceUnavailable(
            f"{provider.title()} calls are not configured ({needs}).", code=f"{provider}_not_configured"
        )
    if svc.audio_urls is None:
        raise ServiceUnavailable(
            f"{provider.title()} calls need AUDIO_URL_SIGNING_KEY: the provider fetches the agent's audio by "
            "signed link.",
            code=f"{provider}_not_configured",
        )


def _caller_id(svc: Services, request: CallRequest) -> str:
    from shared.storage.phone_numbers import PhoneNumberRepository

    number = PhoneNumberRepository(svc.pool).caller_id(request.provider, request.agent)
    if number is None:
        raise Conflict(
            f"You hold no {request.provider} number to call from: add one with POST /api/phone-numbers.",
            code="no_caller_id",
        )
    return number


async def _ring(
    req: func.HttpRequest,
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation_id: str,
    request: CallRequest,
    *,
    caller_id: str,
    leaves_voicemail: bool,
) -> PlacedCall:
    """Ask the provider to place the call; if it refuses, the conversation ends `call_failed` and the
    refusal is the answer. Accepted, its call id (Twilio's CallSid, Vonage's leg uuid) will key the
    conversation, as an inbound call's does (`_keep`)."""
    from shared.call_models import PlacedCall

    call_of = {"conversation_id": conversation_id, "to": request.to, "caller_id": caller_id}
    try:
        if request.provider == "twilio":
            call = await asyncio.to_thread(lambda: _through_twilio(req, svc, leaves_voicemail, **call_of))
        else:
            call = await asyncio.to_thread(lambda: _through_vonage(req, svc, leaves_voicemail, **call_of))
    except ApiError as refused:
        log.warning("outbound call of %s not placed (%s)", conversation_id, refused.code)
        await request_end(svc, client, await load_conversation(svc, conversation_id), Outcome.CALL_FAILED)
        raise
    return PlacedCall(
        conversation_id=conversation_id,
        provider=request.provider,
        call_id=call.call_id,
        status=call.status,
        to=request.to,
        caller_id=caller_id,
    )


def _through_twilio(
    req: func.HttpRequest, svc: Services, leaves_voicemail: bool, *, conversation_id: str, to: str, caller_id: str
) -> Placed:
    from shared.phone.twilio_calls import place_call

    settings, base = svc.settings, origin(req, svc.settings.public_base_url)
    return place_call(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token.get_secret_value(),
        api_base_url=settings.twilio_api_base_url,
        to=to,
        from_=caller_id,
        answer_url=f"{base}{TWILIO_INCOMING_ROUTE}?call={conversation_id}",
        status_url=f"{base}{TWILIO_STATUS_ROUTE}?call={conversation_id}",
        leaves_voicemail=leaves_voicemail,
        ringing_seconds=settings.outbound_ringing_seconds,
    )


def _through_vonage(
    req: func.HttpRequest, svc: Services, leaves_voicemail: bool, *, conversation_id: str, to: str, caller_id: str
) -> Placed:
    from shared.phone.vonage_calls import place_call

    settings, base = svc.settings, origin(req, svc.settings.public_base_url)
    return place_call(
        application_id=settings.vonage_application_id,
        private_key=settings.vonage_private_key.get_secret_value(),
        api_host=settings.vonage_api_host,
        to=to,
        from_=caller_id,
        answer_url=f"{base}{VONAGE_ANSWER_ROUTE}?call={conversation_id}",
        event_url=f"{base}{VONAGE_EVENT_ROUTE}?call={conversation_id}&tenant={current_tenant()}",
        leaves_voicemail=leaves_voicemail,
        ringing_seconds=settings.outbound_ringing_seconds,
    )


async def _replayed(svc: Services, conversation_id: str) -> func.HttpResponse:
    """The answer to the call an earlier try with this Idempotency-Key placed: 409 while it is being placed."""
    placed = await _placed_calls(svc).recall(conversation_id)
    if placed is None:
        raise Conflict("A call with this Idempotency-Key is being placed; retry in a moment.", code="call_in_progress")
    return model_response(
        placed.model_copy(update={"replayed": True}), headers={"Location": f"/api/conversations/{conversation_id}"}
    )
