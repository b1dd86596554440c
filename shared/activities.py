"""What each conversation activity does, as plain functions over the services.

Every function is idempotent: a retried activity (the Durable runtime delivers at least once)
finds its earlier work and returns it instead of doing it twice.
"""

from __future__ import annotations

import logging
import time

from shared.agent.aftercall import report_on
from shared.agent.chain import chat_model_for, reply_to
from shared.agent.tools import ToolBox
from shared.errors import InvalidAudio
from shared.models import (
    AfterCallReport,
    AgentProfile,
    ConversationSummary,
    FinalizeInput,
    Outcome,
    PublishResult,
    SynthesizedAudio,
    SynthesizeInput,
    TranscribeInput,
    Transcript,
    TurnAction,
    TurnInput,
    TurnKind,
    TurnRecord,
)
from shared.services import Services
from shared.speech.audio import decode_wav, encode_wav
from shared.storage.blobs import reply_audio_name

log = logging.getLogger(__name__)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def agent_profile(services: Services, name: str) -> AgentProfile:
    profile = services.knowledge.get_agent(name)
    if profile is None:
        raise LookupError(f"agent {name!r} is not in the database")
    return profile


def transcribe(services: Services, request: TranscribeInput) -> Transcript:
    """Hear the caller's audio; audio past the upload bounds is heard as nothing.

    The bounds are checked again here because audio stored before they existed (or under looser
    settings) is still replayed after a restart. An empty transcript keeps the call alive: the agent
    answers it as it answers silence, where an error would be retried and then end the call.
    """
    started = time.perf_counter()
    data = services.audio.get(request.audio_blob)
    if data is None:
        raise LookupError(f"caller audio {request.audio_blob} is missing")
    try:
        audio = decode_wav(data, services.settings.audio_max_seconds)
    except InvalidAudio as refused:
        log.warning("caller audio %s heard as nothing: %s", request.audio_blob, refused.message)
        return Transcript(text="", stt_ms=_elapsed_ms(started))
    profile = agent_profile(services, request.agent)
    text = services.stt.transcribe(audio, request.language, profile.listening_phrases())
    return Transcript(text=text, stt_ms=_elapsed_ms(started))


def respond(services: Services, request: TurnInput) -> TurnRecord:
    """Answer one turn and persist it; a retry returns the turn already stored."""
    repository = services.conversations
    if request.request_id is not None:
        existing = repository.get_turn_by_request(request.conversation_id, request.request_id)
        if existing is not None:
            return existing
    existing = repository.get_turn(request.conversation_id, request.turn)
    if existing is not None:
        return existing
    profile = agent_profile(services, request.agent)
    started = time.perf_counter()
    action, transfer_to, tool_calls = TurnAction.CONTINUE, None, []
    if request.kind is TurnKind.GREETING:
        text, intent, llm = profile.greeting, None, None
    elif request.kind is TurnKind.REPROMPT:
        text, intent, llm = profile.reprompt, None, None
    else:
        retriever = services.retriever(profile.name)
        history = repository.list_turns(request.conversation_id, last=services.settings.history_turns)
        toolbox = ToolBox(
            profile=profile,
            retriever=retriever,
            egress=services.egress,
            conversation_id=request.conversation_id,
            turn=request.turn,
            callbacks=services.callbacks,
        )
        model = chat_model_for(profile, services.settings, tools=toolbox.specs())
        answered = reply_to(
            profile, retriever, request.text or "", history, request.summary, model=model, toolbox=toolbox
        )
        text, intent, llm = answered.reply.text, answered.reply.intent, answered.llm
        action, transfer_to, tool_calls = answered.action, answered.transfer_to, answered.tool_calls
    return repository.record_turn(
        TurnRecord(
            conversation_id=request.conversation_id,
            turn=request.turn,
            kind=request.kind,
            request_id=request.request_id,
            user_text=request.text,
            intent=intent,
            reply_text=text,
            stt_ms=request.stt_ms,
            agent_ms=_elapsed_ms(started),
            llm=llm,
            action=action,
            transfer_to=transfer_to,
            tool_calls=tool_calls,
        )
    )


def synthesize(services: Services, request: SynthesizeInput) -> SynthesizedAudio:
    """Speak the reply into a WAV blob named after the turn (overwriting is harmless on retry)."""
    profile = agent_profile(services, request.agent)
    started = time.perf_counter()
    audio = services.tts.synthesize(request.text, request.language, profile.voice)
    name = reply_audio_name(request.conversation_id, request.turn)
    services.audio.put(name, encode_wav(audio))
    tts_ms = _elapsed_ms(started)
    services.conversations.set_audio(request.conversation_id, request.turn, name, tts_ms)
    return SynthesizedAudio(audio_blob=name, tts_ms=tts_ms, duration_seconds=audio.duration_seconds)


def publish(services: Services, conversation_id: str, request_id: str) -> PublishResult:
    """Hand the stored turn for this request to the request waiting on it.

    Also says whether the client has asked to end: an `end` event raised while the orchestration
    continued as new is dropped, but the conversation row already says so.
    """
    turn = services.conversations.get_turn_by_request(conversation_id, request_id)
    if turn is None:
        raise LookupError(f"no turn for request {request_id} in {conversation_id}")
    services.publisher.publish(conversation_id, request_id, turn.model_dump(mode="json"))
    conversation = services.conversations.get(conversation_id)
    return PublishResult(ending=conversation is not None and conversation.status != "active")


def summarize(services: Services, conversation_id: str) -> str:
    """The summary the next generation carries: the after-call report's, so one model path writes both.

    The agent reads it as a record of the call (it quotes the caller), never as instructions.
    """
    return _report(services, conversation_id, services.conversations.list_turns(conversation_id)).summary


def _report(services: Services, conversation_id: str, turns: list[TurnRecord]) -> AfterCallReport:
    conversation = services.conversations.get(conversation_id)
    if conversation is None:
        raise LookupError(f"no conversation {conversation_id}")
    return report_on(agent_profile(services, conversation.agent), turns, services.settings)


def finalize(services: Services, request: FinalizeInput) -> ConversationSummary:
    """Close the conversation once, with the after-call summary and extraction, and wake any waiting request.

    A later call (a retry, or a second closer racing the first) keeps the first outcome and report: a
    conversation already closed is not reported on again, and a report written second is not stored.
    """
    repository = services.conversations
    turns = repository.list_turns(request.conversation_id)
    conversation = repository.get(request.conversation_id)
    if conversation is not None and conversation.status != "completed":
        report = _report(services, request.conversation_id, turns)
        repository.complete(request.conversation_id, request.outcome, report.summary, report.extraction, report.llm)
        conversation = repository.get(request.conversation_id)
    if conversation is None:
        raise LookupError(f"no conversation {request.conversation_id}")
    outcome = Outcome(conversation.outcome) if conversation.outcome else request.outcome
    services.publisher.announce_end(request.conversation_id, outcome.value)
    return ConversationSummary(
        conversation_id=request.conversation_id,
        outcome=outcome,
        summary=conversation.summary or "",
        turns=len(turns),
        extraction=conversation.extraction or {},
    )
