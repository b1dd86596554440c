"""Browser and app sessions through Azure Web PubSub: negotiate, then the hub's event handler.

`POST /api/realtime/negotiate` (an API key or a signed-in user) starts a conversation, or rejoins one,
and answers a client URL whose token names the conversation and lets the client join its group only.
The hub then calls `/api/realtime/events`: `OPTIONS` (abuse protection: only our Web PubSub host is
allowed), `connect` (refused unless the token's conversation is a live web session), `connected`,
`disconnected`, and the user events `utterance` (typed text as JSON, or a WAV as binary), `interrupt`
(barge-in) and `end`.
Every event must carry the hub's `ce-signature` for its connection (shared/realtime/protocol.py), or, with
WEB_PUBSUB_UPSTREAM_AUDIENCE set (local auth off), the service's Entra token (shared/realtime/upstream.py).

An event handler answers at once: an utterance is raised on the conversation and the reply goes to
the group from the turn activity (shared/realtime/replies.py), never from here. A user event's non-2xx
answer makes Web PubSub drop the connection, so a client's mistake (malformed, oversized, a turn still
in progress) is answered 200 with an `error` message, which the hub hands back to that client.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from functions.auth import guarded
from functions.conversation_flow import (
    app_services,
    greeting_reply,
    load_conversation,
    raise_once,
    request_end,
    start_once,
)
from functions.http import json_errors, json_response, model_response
from shared.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    GatewayTimeout,
    PayloadTooLarge,
    ServiceUnavailable,
    Unauthorized,
)
from shared.security.roles import Scope
from shared.tenancy import current_tenant, tenant_scope

if TYPE_CHECKING:
    from shared.realtime.protocol import Session
    from shared.realtime.replies import GroupSender
    from shared.services import Services
    from shared.storage.conversations import Conversation

bp = df.Blueprint()
log = logging.getLogger(__name__)

CONNECT, CONNECTED, DISCONNECTED = "connect", "connected", "disconnected"
NEGOTIATE_MAX_BYTES = 4096


def _realtime(svc: Services) -> GroupSender:
    """The Web PubSub sender, or 503 when neither WEB_PUBSUB_CONNECTION_STRING nor WEB_PUBSUB_ENDPOINT is set."""
    if svc.realtime is None:
        raise ServiceUnavailable(
            "Realtime sessions are not configured (WEB_PUBSUB_CONNECTION_STRING or WEB_PUBSUB_ENDPOINT).",
            code="realtime_not_configured",
        )
    return svc.realtime


async def _from_our_hub(svc: Services, headers: Mapping[str, str], *, handshake: bool = False) -> None:
    """The request comes from our Web PubSub: its Entra token when WEB_PUBSUB_UPSTREAM_AUDIENCE is set (on the
    handshake only if it carries one: whether the service sends one there is not documented, and the
    handshake admits no event), else `ce-signature` with the access key; 401 otherwise."""
    auth = svc.upstream_auth
    if auth is not None:
        if not handshake or headers.get("authorization"):
            await asyncio.to_thread(auth.check, headers.get("authorization"))
        return
    if not handshake and not _realtime(svc).hub.signed(headers.get("ce-connectionid"), headers.get("ce-signature")):
        log.warning("refused a realtime event: bad or missing ce-signature")
        raise Unauthorized("The event does not carry a valid ce-signature.", code="invalid_signature")


@bp.route(route="realtime/negotiate", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
@guarded(Scope.CONVERSATIONS_WRITE)
async def realtime_negotiate(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Where to connect for a new conversation (greeted before this answers) or a live one to rejoin;
    an Idempotency-Key makes a retried start the same conversation."""
    from shared.realtime.protocol import WEB_CHANNEL, Negotiated, Negotiation, Session
    from shared.turn_requests import StartConversation, parse_json, request_id_for

    svc = app_services()
    sender = _realtime(svc)
    body = req.get_body() or b"{}"
    asked = parse_json(Negotiation, req.headers.get("content-type") or "application/json", body, NEGOTIATE_MAX_BYTES)
    greeting: str | None = None
    if asked.conversation_id is not None:
        conversation = await load_conversation(svc, str(asked.conversation_id))
        if conversation.channel != WEB_CHANNEL:
            raise Conflict("That conversation is not a realtime session.", code="not_a_realtime_session")
        if conversation.status != "active":
            raise Conflict("The conversation has ended.", code="conversation_completed")
        conversation_id = conversation.id
    else:
        start = StartConversation(agent=asked.agent, language=asked.language)
        key = request_id_for(req.headers.get("idempotency-key"))  # none: a fresh key of its own
        conversation_id, _ = await start_once(svc, client, key, start, WEB_CHANNEL)
        try:
            greeting = (await greeting_reply(svc, client, conversation_id)).reply_text
        except GatewayTimeout:
            log.warning("realtime %s: greeting late; the client connects anyway", conversation_id)
    session = Session(current_tenant(), conversation_id)
    minutes = svc.settings.realtime_token_minutes
    negotiated = Negotiated(
        url=sender.client_url(session.user_id, session.group, minutes),
        conversation_id=conversation_id,
        group=session.group,
        expires_in_seconds=minutes * 60,
        greeting=greeting,
    )
    return model_response(negotiated, status=200 if asked.conversation_id is not None else 201)


@bp.route(route="realtime/events", methods=["OPTIONS"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def realtime_handshake(req: func.HttpRequest) -> func.HttpResponse:
    """Web PubSub's abuse-protection handshake: allowed for our own Web PubSub host only."""
    svc = app_services()
    hub = _realtime(svc).hub
    await _from_our_hub(svc, req.headers, handshake=True)
    origin = req.headers.get("webhook-request-origin")
    if not hub.origin_allowed(origin):
        log.warning("refused the event-handler handshake of another origin")
        raise Forbidden("Events are taken from the configured Web PubSub only.", code="origin_refused")
    return func.HttpResponse(status_code=200, headers={"WebHook-Allowed-Origin": str(origin)})


@bp.route(route="realtime/events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def realtime_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """One CloudEvent from the hub, once its ce-signature or Entra token holds (401 otherwise; 413 past Web
    PubSub's limit)."""
    from shared.realtime.protocol import MAX_EVENT_BYTES, SYSTEM_EVENT, USER_EVENT, Session
    from shared.realtime.protocol import error as error_message

    svc = app_services()
    hub = _realtime(svc).hub
    headers = req.headers
    await _from_our_hub(svc, headers)
    if (headers.get("ce-hub") or "").lower() != hub.name.lower():  # the service names hubs case-blind
        raise Forbidden("The event is for another hub.", code="wrong_hub")
    body = req.get_body()
    if len(body) > MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"An event is at most {MAX_EVENT_BYTES} bytes.")
    session = Session.of_user(headers.get("ce-userid"))
    kind = headers.get("ce-type", "")
    if kind in {SYSTEM_EVENT + CONNECTED, SYSTEM_EVENT + DISCONNECTED}:
        if session is not None:
            with tenant_scope(session.tenant):
                await _presence(
                    svc, client, session, headers.get("ce-connectionid") or "", kind == SYSTEM_EVENT + CONNECTED
                )
        return func.HttpResponse(status_code=204)
    if session is None:
        raise Unauthorized("The connection's token names no conversation.", code="not_a_session")
    with tenant_scope(session.tenant):
        if kind == SYSTEM_EVENT + CONNECT:
            return await _connect(svc, session)
        if kind.startswith(USER_EVENT):
            event = kind.removeprefix(USER_EVENT)
            try:
                return await _user_event(
                    svc, client, session, event, content_type=headers.get("content-type"), body=body
                )
            except ApiError as error:  # the client's mistake: said to it, its connection kept
                return json_response(error_message(error.code, error.message))
    raise BadRequest(f"Not an event this handler takes: {kind!r}.", code="unknown_event")


async def _connect(svc: Services, session: Session) -> func.HttpResponse:
    """Accept a connection for a live web conversation of the token's tenant: user and group assigned."""
    from shared.realtime.protocol import WEB_CHANNEL

    try:
        conversation = await load_conversation(svc, session.conversation_id)
    except ApiError as error:
        raise Unauthorized("The token's conversation does not exist.", code="not_a_session") from error
    if conversation.channel != WEB_CHANNEL or conversation.status != "active":
        raise Unauthorized("The token's conversation is not a live realtime session.", code="not_a_session")
    return json_response({"userId": session.user_id, "groups": [session.group]})


async def _presence(
    svc: Services, client: df.DurableOrchestrationClient, session: Session, connection_id: str, connected: bool
) -> None:
    """Count a connection opened or closed, and tell the live conversation (shared/realtime/presence.py):
    with none open it ends after REALTIME_DISCONNECT_GRACE_SECONDS unless the client reconnects. The
    service only logs a failed answer to these events, so a failure here is logged too."""
    from shared import dialog
    from shared.realtime import presence

    if not connection_id or len(connection_id) > 128:
        return
    try:
        conversation = await load_conversation(svc, session.conversation_id)
        if conversation.status != "active":
            return
        prefix = svc.settings.redis_key_prefix
        counted = await presence.count(svc.async_redis, prefix, conversation.id, connection_id, connected=connected)
        await client.raise_event(conversation.id, dialog.presence_event_named(counted.seq), counted.model_dump())
    except Exception as error:
        log.warning("realtime %s: a presence change was not passed on: %s", session.conversation_id, error)


async def _user_event(
    svc: Services,
    client: df.DurableOrchestrationClient,
    session: Session,
    event: str,
    *,
    content_type: str | None,
    body: bytes,
) -> func.HttpResponse:
    conversation = await load_conversation(svc, session.conversation_id)
    if event == "utterance":
        return await _utterance(svc, client, conversation, content_type, body)
    if event == "interrupt":
        return await _interrupt(svc, conversation, body)
    if event == "end":
        if not await request_end(svc, client, conversation):
            raise Conflict("The conversation has already ended.", code="conversation_completed")
        return func.HttpResponse(status_code=204)
    raise BadRequest(f"Unknown event {event[:64]!r}: send utterance, interrupt or end.", code="unknown_event")


async def _interrupt(svc: Services, conversation: Conversation, body: bytes) -> func.HttpResponse:
    """Barge-in: mark the turn interrupted (once; the first says what was played). A reply still being
    written is stopped by its writer within INTERRUPT_CHECK_SECONDS; one written already (the usual case:
    the client plays it long after) is cut here, and its corrected `reply.done` answers the client.
    Either way the turn keeps what was heard, and only while it is the conversation's latest turn."""
    from pydantic import ValidationError

    from shared.realtime.interruptions import cut_to_heard, mark_interrupted
    from shared.realtime.protocol import Interruption
    from shared.realtime.replies import reply_done
    from shared.storage.handoff import TurnKeys

    try:
        asked = Interruption.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in error.errors())
        raise BadRequest(f"An interrupt is JSON {{turn, played}}. {problems}", code="invalid_interrupt") from None
    keys = TurnKeys(svc.settings.redis_key_prefix, conversation.id)
    if not await svc.async_redis.exists(keys.stream(asked.turn)):  # a reply not begun cannot be cut short
        raise Conflict(f"Turn {asked.turn} has no reply to interrupt.", code="nothing_to_interrupt")
    if await svc.async_redis.exists(keys.stream(asked.turn + 1)):
        raise Conflict(f"Turn {asked.turn} is no longer the latest.", code="nothing_to_interrupt")
    await mark_interrupted(svc, conversation.id, asked.turn, asked.played)
    stored = await asyncio.to_thread(svc.conversations.get_turn, conversation.id, asked.turn)
    if stored is None:  # still being written: its writer sees the mark (and cuts it if it was too late)
        return func.HttpResponse(status_code=204)
    cut = await asyncio.to_thread(cut_to_heard, svc, conversation.id, asked.turn)
    if cut is None:
        raise Conflict(f"Turn {asked.turn} is no longer the latest.", code="nothing_to_interrupt")
    return json_response(reply_done(cut.model_dump(mode="json"), interrupted=True))


async def _utterance(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    content_type: str | None,
    body: bytes,
) -> func.HttpResponse:
    """Raise the utterance once per client id (spoken audio's id is its digest) and answer at once; a resent
    one that was answered already gets its `reply.done` again. Binary is a WAV, or raw 16 kHz PCM."""
    from shared.realtime.protocol import pcm_as_wav
    from shared.realtime.replies import reply_done
    from shared.storage.handoff import TurnKeys
    from shared.turn_requests import TurnBody, check_size, media_type, parse_turn, request_id_for

    received_at = time.time()
    settings = svc.settings
    if media_type(content_type) == "application/octet-stream":
        check_size(body, settings.max_request_bytes)
        wav = body if body.startswith(b"RIFF") else pcm_as_wav(body)
        turn = parse_turn("audio/wav", wav, settings.max_request_bytes, settings.audio_max_seconds)
        utterance_id = f"wav-{hashlib.sha256(body).hexdigest()[:40]}"
    else:
        utterance_id, text = _typed(body)
        turn = TurnBody(text=text)
    earlier, _ = await raise_once(
        svc, client, conversation, request_id_for(utterance_id), turn, received_at=received_at
    )
    if earlier is not None:
        cut = TurnKeys(settings.redis_key_prefix, conversation.id).interrupted(earlier.turn)
        interrupted = bool(await svc.async_redis.exists(cut))
        return json_response(reply_done(earlier.model_dump(mode="json"), interrupted=interrupted))
    return func.HttpResponse(status_code=204)


def _typed(body: bytes) -> tuple[str, str]:
    """A typed utterance's id and text (whitespace collapsed, as typed turns are); BadRequest naming what is
    wrong."""
    from pydantic import ValidationError

    from shared.realtime.protocol import TypedUtterance

    try:
        typed = TypedUtterance.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in error.errors())
        raise BadRequest(f"An utterance is JSON {{id, text}} or a WAV. {problems}", code="invalid_utterance") from None
    text = " ".join(typed.text.split())
    if not text:
        raise BadRequest("The utterance's text is empty.", code="empty_text")
    return typed.id, text
