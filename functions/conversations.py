"""The plain HTTP conversation API: start, take typed or spoken turns, read, end, fetch audio."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import TYPE_CHECKING

import azure.durable_functions as df
import azure.functions as func

from functions.auth import current_actor, guarded, guarded_or_signed
from functions.conversation import GREETING_REQUEST_ID
from functions.conversation_flow import (
    app_services,
    audio_url,
    await_reply,
    begin,
    greeting_reply,
    load_conversation,
    request_end,
    settled,
    start_once,
    take_turn_once,
)
from functions.http import json_errors, model_response, origin
from shared import telemetry
from shared.api_models import (
    ConversationDetail,
    Ending,
    Reply,
    Started,
    StartError,
    StoredTimings,
    TranscriptTurn,
    TurnTaken,
    TurnTimings,
)
from shared.errors import ApiError, BadRequest, Conflict, NotFound
from shared.models import TurnRecord
from shared.security.roles import Scope

if TYPE_CHECKING:
    from shared.services import Services

# The app's core (storage clients, request parsing with audio decoding, the activities) loads on a
# function's first call, not at import: every cold start, health checks included, would pay for it.

bp = df.Blueprint()
log = logging.getLogger(__name__)

TURN_NUMBER = re.compile(r"[0-9]{1,9}")
SENTENCE_NUMBER = re.compile(r"[0-9]{1,3}")
AUDIO_RATES = frozenset({8000, 16000})
"""Rates an audio link may ask for (`?rate=`): 8 kHz for phone calls, 16 kHz as the engines speak."""
MAX_SERVED_SECONDS = 600.0
"""A bound on stored audio decoded for resampling; our own replies are far shorter."""


def _reply(req: func.HttpRequest, svc: Services, turn: TurnRecord) -> Reply:
    return Reply(text=turn.reply_text, audio_url=audio_url(req, svc, turn.conversation_id, turn.turn))


@bp.route(route="conversations", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
@guarded(Scope.CONVERSATIONS_WRITE)
async def start_conversation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start a conversation and answer its greeting; an Idempotency-Key makes a retry return the same one."""
    from shared.turn_requests import parse_start, request_id_for

    svc = app_services()
    request = parse_start(req.headers.get("content-type"), req.get_body(), svc.settings.max_request_bytes)
    key = req.headers.get("idempotency-key")
    if key is None:
        conversation_id, began = str(uuid.uuid4()), True
        await begin(svc, client, conversation_id, request)
    else:
        conversation_id, began = await start_once(svc, client, request_id_for(key), request)
    location = {"Location": f"/api/conversations/{conversation_id}"}
    try:
        greeting = await (
            await_reply(svc, client, conversation_id, GREETING_REQUEST_ID)
            if began
            else greeting_reply(svc, client, conversation_id)
        )
    except ApiError as error:
        body = StartError.model_validate(
            {"error": {"code": error.code, "message": error.message}, "conversation_id": conversation_id}
        )
        return model_response(body, status=error.status, headers=location)
    started = Started(conversation_id=conversation_id, reply=_reply(req, svc, greeting), replayed=not began)
    return model_response(started, status=201, headers=location)


@bp.route(route="conversations/{conversation_id}/turns", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
@guarded(Scope.CONVERSATIONS_WRITE)
async def take_turn(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    from shared.turn_requests import parse_turn, request_id_for

    started, received_at = time.perf_counter(), time.time()
    svc = app_services()
    settings = svc.settings
    body = parse_turn(
        req.headers.get("content-type"), req.get_body(), settings.max_request_bytes, settings.audio_max_seconds
    )
    conversation = await load_conversation(svc, req.route_params["conversation_id"])
    request_id = request_id_for(req.headers.get("idempotency-key"))
    turn, replayed = await take_turn_once(svc, client, conversation, request_id, body, received_at=received_at)
    total_ms = (time.perf_counter() - started) * 1000
    inside_ms = sum(t or 0.0 for t in (turn.stt_ms, turn.agent_ms, turn.tts_ms))
    if not replayed:
        telemetry.turn_overhead(total_ms - inside_ms)
    taken = TurnTaken(
        turn=turn.turn,
        transcript=turn.user_text,
        intent=turn.intent,
        reply=_reply(req, svc, turn),
        action=turn.action,
        transfer_to=turn.transfer_to,
        timings_ms=TurnTimings(
            stt=turn.stt_ms,
            agent=turn.agent_ms,
            tts=turn.tts_ms,
            first_audio=turn.first_audio_ms,
            overhead=None if replayed else round(total_ms - inside_ms, 2),
            total=round(total_ms, 2),
        ),
        replayed=replayed,
    )
    return model_response(taken)


@bp.route(route="conversations/{conversation_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
@guarded(Scope.CONVERSATIONS_READ)
async def get_conversation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    svc = app_services()
    conversation = await load_conversation(svc, req.route_params["conversation_id"])
    if conversation.status != "completed":
        conversation = await settled(svc, conversation, await client.get_status(conversation.id))
    turns = await asyncio.to_thread(lambda: svc.conversations.list_turns(conversation.id))
    detail = ConversationDetail(
        conversation_id=conversation.id,
        agent=conversation.agent,
        language=conversation.language,
        status=conversation.status,  # type: ignore[arg-type]  # the column's CHECK allows these three
        outcome=conversation.outcome,
        summary=conversation.summary,
        extraction=conversation.extraction,
        aftercall_llm=conversation.aftercall_llm,
        call_duration_seconds=conversation.call_duration_seconds,
        recording_url=None
        if conversation.recording_blob is None
        else f"{origin(req, svc.settings.public_base_url)}/api/conversations/{conversation.id}/recording",
        recording_seconds=conversation.recording_seconds,
        created_at=conversation.created_at,
        ended_at=conversation.ended_at,
        turns=[
            TranscriptTurn(
                turn=t.turn,
                kind=t.kind,
                text=t.user_text,
                intent=t.intent,
                reply=_reply(req, svc, t),
                timings_ms=StoredTimings(stt=t.stt_ms, agent=t.agent_ms, tts=t.tts_ms),
                llm=t.llm,
                action=t.action,
                transfer_to=t.transfer_to,
                tool_calls=list(t.tool_calls),
                citations=list(t.citations),
                language=t.language,
                stt_engine=t.stt_engine,
                tts_engine=t.tts_engine,
                written_reply=t.written_reply,
            )
            for t in turns
        ],
    )
    return model_response(detail)


@bp.route(route="conversations/{conversation_id}/end", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
@guarded(Scope.CONVERSATIONS_WRITE)
async def end_conversation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    svc = app_services()
    conversation = await load_conversation(svc, req.route_params["conversation_id"])
    if not await request_end(svc, client, conversation):
        raise Conflict("The conversation has already ended.", code="conversation_completed")
    return model_response(Ending(conversation_id=conversation.id, status="ending"), status=202)


LIVE = frozenset(
    {
        df.OrchestrationRuntimeStatus.Running,
        df.OrchestrationRuntimeStatus.Pending,
        df.OrchestrationRuntimeStatus.Suspended,
        df.OrchestrationRuntimeStatus.ContinuedAsNew,
    }
)
"""Runtime states in which an orchestration may still write turns and audio: its conversation is not deleted."""


@bp.route(route="conversations/{conversation_id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
@json_errors
@guarded(Scope.CONVERSATIONS_ADMIN)
async def delete_conversation(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Delete an ended conversation and everything kept of it: its Durable history (purged), its Redis
    keys, audio and recording, its turns; audited. A live one is refused, not ended here: a turn still
    being answered would write its audio after the delete."""
    from shared.erasure import erase_conversation

    svc = app_services()
    conversation = await load_conversation(svc, req.route_params["conversation_id"])
    status = await client.get_status(conversation.id)
    conversation = await settled(svc, conversation, status)
    if conversation.status != "completed" or (status and status.runtime_status in LIVE):
        raise Conflict(
            f"The conversation is still going: end it (POST /api/conversations/{conversation.id}/end), "
            "then delete it once it has completed.",
            code="conversation_active",
        )
    await client.purge_instance_history(conversation.id)
    actor = current_actor()
    if not await asyncio.to_thread(lambda: erase_conversation(svc, conversation, actor)):
        raise NotFound(f"No conversation {conversation.id!r}.")
    return func.HttpResponse(status_code=204)


@bp.route(route="conversations/{conversation_id}/audio/{turn}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded_or_signed(Scope.CONVERSATIONS_READ)
async def get_audio(req: func.HttpRequest) -> func.HttpResponse:
    rate = _requested_rate(req)
    svc = app_services()
    conversation = await load_conversation(svc, req.route_params["conversation_id"])
    turn_text = req.route_params["turn"]
    record = (
        await asyncio.to_thread(lambda: svc.conversations.get_turn(conversation.id, int(turn_text)))
        if TURN_NUMBER.fullmatch(turn_text)
        else None
    )
    data = None
    if record is not None and record.audio_blob is not None:
        blob = record.audio_blob
        data = await asyncio.to_thread(lambda: svc.audio.get(blob))
    if data is None:
        raise NotFound(f"No audio for turn {turn_text} (yet).", code="audio_not_found")
    return _wav(data, rate)


@bp.route(route="conversations/{conversation_id}/recording", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@json_errors
@guarded(Scope.CONVERSATIONS_READ)
async def get_recording(req: func.HttpRequest) -> func.HttpResponse:
    """The phone call's recording (WAV, as the provider recorded it), kept with the conversation."""
    svc = app_services()
    conversation = await load_conversation(svc, req.route_params["conversation_id"])
    blob = conversation.recording_blob
    data = None if blob is None else await asyncio.to_thread(lambda: svc.audio.get(blob))
    if data is None:
        raise NotFound("This conversation has no recording (yet).", code="recording_not_found")
    return func.HttpResponse(
        data, status_code=200, mimetype="audio/wav", headers={"Cache-Control": "private, max-age=3600"}
    )


@bp.route(
    route="conversations/{conversation_id}/audio/{turn}/{sentence}",
    methods=["GET"],
    auth_level=func.AuthLevel.ANONYMOUS,
)
@json_errors
@guarded_or_signed(Scope.CONVERSATIONS_READ)
async def get_sentence_audio(req: func.HttpRequest) -> func.HttpResponse:
    """One sentence of a reply, as the turn's reply stream announces it (before the whole turn is stored)."""
    from shared.storage.blobs import sentence_audio_name

    rate = _requested_rate(req)
    svc = app_services()
    conversation = await load_conversation(svc, req.route_params["conversation_id"])
    turn_text, sentence_text = req.route_params["turn"], req.route_params["sentence"]
    data = None
    if TURN_NUMBER.fullmatch(turn_text) and SENTENCE_NUMBER.fullmatch(sentence_text):
        blob = sentence_audio_name(conversation.id, int(turn_text), int(sentence_text))
        data = await asyncio.to_thread(lambda: svc.audio.get(blob))
    if data is None:
        raise NotFound(f"No audio for sentence {sentence_text} of turn {turn_text} (yet).", code="audio_not_found")
    return _wav(data, rate)


def _requested_rate(req: func.HttpRequest) -> int | None:
    """The `rate` an audio link asks for, None for the audio as stored; 400 unless one of AUDIO_RATES."""
    text = req.params.get("rate")
    if text is None:
        return None
    if text not in {str(rate) for rate in AUDIO_RATES}:
        rates = ", ".join(str(rate) for rate in sorted(AUDIO_RATES))
        raise BadRequest(f"rate must be one of {rates}.", code="unsupported_rate")
    return int(text)


def _wav(data: bytes, rate: int | None) -> func.HttpResponse:
    """The stored WAV, or resampled to `rate` with soxr (a few ms for a sentence; nothing stored twice)."""
    if rate is not None:
        from shared.speech.audio import decode_wav, encode_wav, resample

        audio = decode_wav(data, max_seconds=MAX_SERVED_SECONDS)
        if audio.rate != rate:
            data = encode_wav(resample(audio, rate))
    return func.HttpResponse(
        data, status_code=200, mimetype="audio/wav", headers={"Cache-Control": "private, max-age=3600"}
    )
