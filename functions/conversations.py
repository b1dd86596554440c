"""The plain HTTP conversation API: start, take typed or spoken turns, read, end, fetch audio."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions.conversation import END_EVENT, GREETING_REQUEST_ID, ORCHESTRATOR
from functions.http import json_errors, json_response, origin
from shared.config import Settings
from shared.errors import Conflict, GatewayTimeout, NotFound
from shared.models import ConversationState, DialogPolicy, TurnRecord, Utterance
from shared.services import Services, services
from shared.storage.blobs import caller_audio_name
from shared.storage.conversations import Conversation
from shared.storage.handoff import Claim
from shared.turn_requests import TurnBody, parse_start, parse_turn, request_id_for

bp = df.Blueprint()

API_CHANNEL = "api"
ACCEPTING = (df.OrchestrationRuntimeStatus.Running, df.OrchestrationRuntimeStatus.Pending)
TURN_NUMBER = re.compile(r"[0-9]{1,9}")
TURN_LOCK_MARGIN_SECONDS = 120
"""How long a turn lock outlives the reply deadline if its turn never completes (a crash)."""


def _policy(settings: Settings) -> DialogPolicy:
    return DialogPolicy(
        silence_timeout_seconds=settings.silence_timeout_seconds,
        max_silences=settings.max_silences,
        turns_per_generation=settings.turns_per_generation,
    )


def _audio_url(req: func.HttpRequest, settings: Settings, conversation_id: str, turn: int) -> str:
    return f"{origin(req, settings.public_base_url)}/api/conversations/{conversation_id}/audio/{turn}"


def _reply(req: func.HttpRequest, settings: Settings, turn: TurnRecord) -> dict[str, Any]:
    return {"text": turn.reply_text, "audio_url": _audio_url(req, settings, turn.conversation_id, turn.turn)}


def _valid_id(conversation_id: str) -> str:
    try:
        return str(uuid.UUID(conversation_id))
    except ValueError as error:
        raise NotFound(f"No conversation {conversation_id!r}.") from error


async def _conversation(svc: Services, conversation_id: str) -> Conversation:
    conversation = await asyncio.to_thread(svc.conversations.get, _valid_id(conversation_id))
    if conversation is None:
        raise NotFound(f"No conversation {conversation_id!r}.")
    return conversation


async def _await_reply(svc: Services, conversation_id: str, request_id: str) -> TurnRecord:
    reply = await svc.waiter.wait(conversation_id, request_id, svc.settings.turn_reply_timeout_seconds)
    if reply is None:
        raise GatewayTimeout(
            "The reply is taking longer than expected. "
            f"GET /api/conversations/{conversation_id} for the turn and the conversation's status, "
            "or retry with the same Idempotency-Key."
        )
    return TurnRecord.model_validate(reply)


@bp.route(route="conversations", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def start_conversation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    svc = services()
    request = parse_start(req.headers.get("content-type"), req.get_body(), svc.settings.max_request_bytes)
    agent_name = request.agent or svc.settings.default_agent
    profile = await asyncio.to_thread(svc.knowledge.get_agent, agent_name)
    if profile is None:
        raise NotFound(f"No agent {agent_name!r}.", code="unknown_agent")
    conversation_id = str(uuid.uuid4())
    language = request.language or profile.language
    await asyncio.to_thread(svc.conversations.create, conversation_id, profile.name, language, API_CHANNEL)
    state = ConversationState(
        conversation_id=conversation_id, agent=profile.name, language=language, policy=_policy(svc.settings)
    )
    await client.start_new(ORCHESTRATOR, conversation_id, state.model_dump(mode="json"))
    greeting = await _await_reply(svc, conversation_id, GREETING_REQUEST_ID)
    return json_response(
        {"conversation_id": conversation_id, "reply": _reply(req, svc.settings, greeting)},
        status=201,
        headers={"Location": f"/api/conversations/{conversation_id}"},
    )


@bp.route(route="conversations/{conversation_id}/turns", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def take_turn(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    started = time.perf_counter()
    svc = services()
    settings = svc.settings
    body = parse_turn(
        req.headers.get("content-type"), req.get_body(), settings.max_request_bytes, settings.audio_max_seconds
    )
    conversation = await _conversation(svc, req.route_params["conversation_id"])
    request_id = request_id_for(req.headers.get("idempotency-key"))
    turn, replayed = await _take_turn(svc, client, conversation, request_id, body)
    total_ms = (time.perf_counter() - started) * 1000
    inside_ms = sum(t or 0.0 for t in (turn.stt_ms, turn.agent_ms, turn.tts_ms))
    return json_response(
        {
            "turn": turn.turn,
            "transcript": turn.user_text,
            "intent": turn.intent,
            "reply": _reply(req, svc.settings, turn),
            "timings_ms": {
                "stt": turn.stt_ms,
                "agent": turn.agent_ms,
                "tts": turn.tts_ms,
                "overhead": None if replayed else round(total_ms - inside_ms, 2),
                "total": round(total_ms, 2),
            },
            "replayed": replayed,
        }
    )


async def _take_turn(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation: Conversation,
    request_id: str,
    body: TurnBody,
) -> tuple[TurnRecord, bool]:
    """Raise the utterance once per request id and wait for its reply; retries get the same turn.

    Returns the turn and whether it was answered before (a retry), not made for this request.
    """
    stored = await svc.waiter.stored_reply(conversation.id, request_id)
    if stored is not None:
        return TurnRecord.model_validate(stored), True
    if conversation.status != "active":
        raise Conflict("The conversation has ended.", code="conversation_completed")
    lock_ttl = int(svc.settings.turn_reply_timeout_seconds) + TURN_LOCK_MARGIN_SECONDS
    claim = await svc.waiter.claim_turn(conversation.id, request_id, lock_ttl)
    if claim is Claim.TAKEN:
        raise Conflict("Another turn of this conversation is still in progress.", code="turn_in_progress")
    if claim is Claim.NEW:
        try:
            await _raise_utterance(svc, client, conversation.id, request_id, body)
        except BaseException:
            await svc.waiter.release_turn(conversation.id, request_id)
            raise
    return await _await_reply(svc, conversation.id, request_id), claim is Claim.HELD


async def _raise_utterance(
    svc: Services,
    client: df.DurableOrchestrationClient,
    conversation_id: str,
    request_id: str,
    body: TurnBody,
) -> None:
    """Send the utterance under the event name the orchestrator is listening for."""
    status = await client.get_status(conversation_id)
    custom = status.custom_status if status else None
    if status.runtime_status not in ACCEPTING or not isinstance(custom, dict) or "expecting" not in custom:
        raise Conflict("The conversation is no longer accepting turns.", code="conversation_completed")
    audio_blob = None
    if body.wav is not None:
        audio_blob = caller_audio_name(conversation_id, request_id)
        await asyncio.to_thread(svc.audio.put, audio_blob, body.wav)
    utterance = Utterance(request_id=request_id, text=body.text, audio_blob=audio_blob)
    try:
        await client.raise_event(conversation_id, str(custom["expecting"]), utterance.model_dump())
    except Exception as error:
        raise Conflict("The conversation is no longer accepting turns.", code="conversation_completed") from error


@bp.route(route="conversations/{conversation_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def get_conversation(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    conversation = await _conversation(svc, req.route_params["conversation_id"])
    turns = await asyncio.to_thread(svc.conversations.list_turns, conversation.id)
    return json_response(
        {
            "conversation_id": conversation.id,
            "agent": conversation.agent,
            "language": conversation.language,
            "status": "completed" if conversation.status == "completed" else "active",
            "outcome": conversation.outcome,
            "summary": conversation.summary,
            "created_at": conversation.created_at.isoformat(),
            "ended_at": conversation.ended_at.isoformat() if conversation.ended_at else None,
            "turns": [
                {
                    "turn": t.turn,
                    "kind": t.kind,
                    "text": t.user_text,
                    "intent": t.intent,
                    "reply": _reply(req, svc.settings, t),
                    "timings_ms": {"stt": t.stt_ms, "agent": t.agent_ms, "tts": t.tts_ms},
                }
                for t in turns
            ],
        }
    )


@bp.route(route="conversations/{conversation_id}/end", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
async def end_conversation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    svc = services()
    conversation = await _conversation(svc, req.route_params["conversation_id"])
    if conversation.status == "completed":
        raise Conflict("The conversation has already ended.", code="conversation_completed")
    await asyncio.to_thread(svc.conversations.mark_ending, conversation.id)
    try:
        await client.raise_event(conversation.id, END_EVENT, None)
    except Exception as error:
        raise Conflict("The conversation has already ended.", code="conversation_completed") from error
    return json_response({"conversation_id": conversation.id, "status": "ending"}, status=202)


@bp.route(route="conversations/{conversation_id}/audio/{turn}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
async def get_audio(req: func.HttpRequest) -> func.HttpResponse:
    svc = services()
    conversation = await _conversation(svc, req.route_params["conversation_id"])
    turn_text = req.route_params["turn"]
    record = (
        await asyncio.to_thread(svc.conversations.get_turn, conversation.id, int(turn_text))
        if TURN_NUMBER.fullmatch(turn_text)
        else None
    )
    data = None
    if record is not None and record.audio_blob is not None:
        data = await asyncio.to_thread(svc.audio.get, record.audio_blob)
    if data is None:
        raise NotFound(f"No audio for turn {turn_text} (yet).", code="audio_not_found")
    return func.HttpResponse(
        data, status_code=200, mimetype="audio/wav", headers={"Cache-Control": "private, max-age=3600"}
    )
