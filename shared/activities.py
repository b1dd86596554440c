"""What each conversation activity does, as plain functions over the services.

Every function is idempotent: a retried activity (the Durable runtime delivers at least once)
finds its earlier work and returns it instead of doing it twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter

from shared.agent.chain import chat_model_for, reply_to
from shared.agent.tools import ToolBox
from shared.errors import InvalidAudio
from shared.models import (
    AgentProfile,
    ConversationSummary,
    FinalizeInput,
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
from shared.speech.ports import Hearing, Speaking
from shared.storage.blobs import caller_audio_name, reply_audio_name

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
    hearing = Hearing(
        language=request.language,
        phrases=tuple(profile.listening_phrases()),
        detect_language=profile.detect_language,
        provider=profile.stt_provider,
    )
    heard = services.stt.transcribe(audio, hearing)
    services.conversations.record_heard(request.conversation_id, request.audio_blob, heard.engine, heard.language)
    return Transcript(text=heard.text, stt_ms=_elapsed_ms(started), engine=heard.engine, language=heard.language)


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
    """Speak the reply into a WAV blob named after the turn (overwriting is harmless on retry).

    The turn then records which engine spoke it and, for a spoken utterance, which engine heard it
    (noted by `transcribe` before the turn existed).
    """
    profile = agent_profile(services, request.agent)
    started = time.perf_counter()
    speaking = Speaking(
        language=request.language,
        voice=profile.voice,
        speaker=profile.speaker,
        rate=request.sample_rate,
        provider=profile.tts_provider,
    )
    spoken = services.tts.synthesize(request.text, speaking)
    name = reply_audio_name(request.conversation_id, request.turn)
    services.audio.put(name, encode_wav(spoken.audio))
    tts_ms = _elapsed_ms(started)
    turn = services.conversations.get_turn(request.conversation_id, request.turn)
    heard_blob = None
    if turn is not None and turn.request_id is not None:
        heard_blob = caller_audio_name(request.conversation_id, turn.request_id)
    services.conversations.set_audio(
        request.conversation_id, request.turn, name, tts_ms, tts_engine=spoken.engine, heard_blob=heard_blob
    )
    return SynthesizedAudio(
        audio_blob=name, tts_ms=tts_ms, duration_seconds=spoken.audio.duration_seconds, engine=spoken.engine
    )


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
    """The summary the next generation carries; the agent reads it as a record of the call, never as instructions."""
    return describe(services.conversations.list_turns(conversation_id))


def describe(turns: list[TurnRecord]) -> str:
    """A short factual summary of a conversation from its stored turns.

    It quotes the caller's last request, so wherever it goes it is caller data: the
    prompt carries it in a user message, never in the system message.
    """
    intents = Counter(t.intent.value for t in turns if t.intent is not None)
    asked = [t.user_text for t in turns if t.user_text]
    parts = [f"{len(turns)} turns"]
    if intents:
        parts.append("intents: " + ", ".join(f"{name} x{count}" for name, count in sorted(intents.items())))
    if asked:
        parts.append(f"last request: {asked[-1]!r}")
    return "; ".join(parts)


def finalize(services: Services, request: FinalizeInput) -> ConversationSummary:
    """Close the conversation once (a later call keeps the first outcome) and wake any waiting request."""
    turns = services.conversations.list_turns(request.conversation_id)
    summary = describe(turns)
    services.conversations.complete(request.conversation_id, request.outcome, summary)
    services.publisher.announce_end(request.conversation_id, request.outcome.value)
    return ConversationSummary(
        conversation_id=request.conversation_id, outcome=request.outcome, summary=summary, turns=len(turns)
    )
