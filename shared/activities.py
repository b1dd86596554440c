"""What each conversation activity does, as plain functions over the services.

Every function is idempotent: a retried activity (the Durable runtime delivers at least once)
finds its earlier work and returns it instead of doing it twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared import telemetry
from shared.agent.aftercall import report_on
from shared.agent.chain import OnText, chat_model_for, reply_to
from shared.agent.tools import ToolBox
from shared.errors import InvalidAudio
from shared.models import (
    AfterCallReport,
    AgentProfile,
    Citation,
    ConversationSummary,
    FinalizeInput,
    Intent,
    ModelUsage,
    Outcome,
    Presence,
    PublishResult,
    Transcript,
    TurnAction,
    TurnInput,
    TurnKind,
    TurnRecord,
)
from shared.realtime.interruptions import cut_to_heard
from shared.realtime.protocol import WEB_CHANNEL
from shared.realtime.replies import WebReplyStream, tell_ended
from shared.services import Services
from shared.speech.audio import Audio, decode_wav, encode_wav
from shared.speech.ports import Hearing, Speaking
from shared.spoken_reply import SpokenReply, joined
from shared.storage.blobs import reply_audio_name, sentence_audio_name
from shared.storage.reply_stream import Interrupted, ReplyStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Said:
    """What the agent says in a turn, and, when a model wrote it, its intent, usage and citations."""

    text: str
    intent: Intent | str | None = None
    llm: ModelUsage | None = None
    citations: list[Citation] = field(default_factory=list)


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def agent_profile(services: Services, name: str) -> AgentProfile:
    profile = services.knowledge.get_agent(name, include_deleted=True)  # its conversations finish
    if profile is None:
        raise LookupError(f"agent {name!r} is not in the database")
    return profile


def hear(services: Services, profile: AgentProfile, language: str, audio_blob: str) -> Transcript:
    """Hear the caller's audio; audio past the upload bounds is heard as nothing.

    The bounds are checked again here because audio stored before they existed (or under looser
    settings) is still replayed after a restart. An empty transcript keeps the call alive: the agent
    answers it as it answers silence, where an error would be retried and then end the call.
    """
    started = time.perf_counter()
    data = services.audio.get(audio_blob)
    if data is None:
        raise LookupError(f"caller audio {audio_blob} is missing")
    try:
        audio = decode_wav(data, services.settings.audio_max_seconds)
    except InvalidAudio as refused:
        log.warning("caller audio %s heard as nothing: %s", audio_blob, refused.message)
        return Transcript(text="", stt_ms=_elapsed_ms(started))
    hearing = Hearing(
        language=language,
        phrases=tuple(profile.listening_phrases()),
        detect_language=profile.detect_language,
        provider=profile.stt_provider,
    )
    heard = services.stt.transcribe(audio, hearing)
    return Transcript(text=heard.text, stt_ms=_elapsed_ms(started), engine=heard.engine, language=heard.language)


def reply_language(profile: AgentProfile, language: str, transcript: Transcript | None) -> str:
    """The language to answer in: the one the caller was heard speaking, for an agent that detects it;
    else the conversation's."""
    if profile.detect_language and transcript is not None and transcript.language and transcript.text:
        return transcript.language
    return language


def answer_turn(services: Services, request: TurnInput) -> TurnRecord:
    """The whole turn on the caller's critical path, in one activity: hear (when spoken), answer while
    the model streams, speak each sentence as soon as it is written, announce each on the turn's reply
    stream, then persist the turn and hand it to the request waiting on it.

    The first sentence is preceded by the event name the caller's next utterance goes under (none
    when the agent ended or transferred the call), so a channel never raises it under a stale name.
    A retry finds the stored turn and hands it over again, never a second turn.
    """
    repository = services.conversations
    existing = repository.get_turn(request.conversation_id, request.turn)
    if request.request_id is not None:
        existing = repository.get_turn_by_request(request.conversation_id, request.request_id) or existing
    if existing is not None:
        _hand_over(services, existing)
        return existing
    profile = agent_profile(services, request.agent)
    transcript = None if request.audio_blob is None else hear(services, profile, request.language, request.audio_blob)
    text = transcript.text if transcript is not None else request.text
    language = reply_language(profile, request.language, transcript)
    stream = _reply_stream(services, request)
    toolbox = ToolBox(
        profile=profile,
        retriever=services.retriever(profile.name),
        egress=services.egress,
        conversation_id=request.conversation_id,
        turn=request.turn,
        callbacks=services.callbacks,
    )
    if request.kind is TurnKind.VOICEMAIL:  # a message left on a machine: the call ends after it
        toolbox.action = TurnAction.END_CALL

    def announce_next_event() -> None:
        next_event = request.next_event if toolbox.action is TurnAction.CONTINUE else None
        services.publisher.announce_expecting(request.conversation_id, next_event)
        stream.start(next_event, request.request_id)

    speaking = Speaking(
        language=language,
        voice=profile.voice,
        speaker=profile.speaker,
        rate=request.sample_rate,
        provider=profile.tts_provider,
    )
    with (
        _sending(stream),
        SpokenReply(
            speak=lambda sentence: services.tts.synthesize(sentence, speaking),
            store=lambda index, audio: _store_sentence(services, request, index, audio),
            stream=stream,
            before_first_audio=announce_next_event,
        ) as reply,
    ):
        started = time.perf_counter()
        on_text = _on_text(reply, stream) if services.settings.llm_streaming else None
        try:
            said = _reply_to(services, profile, request, text, toolbox, language=language, on_text=on_text)
            agent_ms = _elapsed_ms(started)
            spoken = reply.finish(said.text)
        except Interrupted:
            said, agent_ms, spoken = Said(""), _elapsed_ms(started), reply.stop()
    played = stream.played(now=True)
    if played is not None:  # barge-in: the turn keeps what the listener heard
        spoken = spoken[:played]
        said = Said(" ".join(s.text for s in spoken), said.intent, said.llm, said.citations)
    whole = reply_audio_name(request.conversation_id, request.turn) if spoken else None
    if whole is not None:
        services.audio.put(whole, encode_wav(joined(spoken)))
    first_audio_ms = None
    if request.received_at is not None and reply.first_audio_at is not None:
        first_audio_ms = round(max(0.0, reply.first_audio_at - request.received_at) * 1000, 2)
    stored = repository.record_turn(
        TurnRecord(
            conversation_id=request.conversation_id,
            turn=request.turn,
            kind=request.kind,
            request_id=request.request_id,
            user_text=text,
            intent=said.intent,
            reply_text=said.text,
            audio_blob=whole,
            stt_ms=transcript.stt_ms if transcript else None,
            agent_ms=agent_ms,
            tts_ms=round(sum(s.tts_ms for s in spoken), 2),
            llm=said.llm,
            action=toolbox.action,
            transfer_to=toolbox.transfer_to,
            tool_calls=toolbox.calls,
            stt_engine=transcript.engine if transcript else None,
            tts_engine="+".join(dict.fromkeys(s.spoken.engine for s in spoken)),
            first_audio_ms=first_audio_ms,
            citations=said.citations,
            language=language,
        )
    )
    if played is None and stream.played(now=True) is not None:
        stored = cut_to_heard(services, request.conversation_id, request.turn) or stored  # interrupted just now
    telemetry.turn_answered(stored, spoken[0].tts_ms if spoken else None)
    stream.done(stored.model_dump(mode="json"))
    _hand_over(services, stored)
    return stored


def _reply_stream(services: Services, request: TurnInput) -> ReplyStream:
    """The turn's reply stream; a web session's also goes to its Web PubSub group as it is written."""
    prefix = services.settings.redis_key_prefix
    if services.realtime is not None:
        conversation = services.conversations.get(request.conversation_id)
        if conversation is not None and conversation.channel == WEB_CHANNEL:
            return WebReplyStream(
                services.redis,
                prefix,
                request.conversation_id,
                request.turn,
                sender=services.realtime,
                audio=services.audio.get,
                sample_rate=request.sample_rate,
            )
    return ReplyStream(services.redis, prefix, request.conversation_id, request.turn)


def _on_text(reply: SpokenReply, stream: ReplyStream) -> OnText:
    """What the model's growing text feeds: the stream (which stops an interrupted reply, and sends a web
    session's deltas), then the sentences to speak."""

    def fed(text: str) -> None:
        stream.text(text)
        reply.feed(text)

    return fed


@contextlib.contextmanager
def _sending(stream: ReplyStream) -> Iterator[None]:
    """A web session's sender stops with a failed turn (a finished one has flushed and stopped)."""
    try:
        yield
    except BaseException:
        if isinstance(stream, WebReplyStream):
            stream.abandon()
        raise


def _own_line(profile: AgentProfile, kind: TurnKind) -> str:
    """The agent's fixed line for a turn nobody asked: its greeting, voicemail message or re-prompt."""
    if kind is TurnKind.GREETING:
        return profile.greeting
    if kind is TurnKind.VOICEMAIL:
        return profile.voicemail_message or profile.greeting
    return profile.reprompt


def _reply_to(
    services: Services,
    profile: AgentProfile,
    request: TurnInput,
    text: str | None,
    toolbox: ToolBox,
    *,
    language: str,
    on_text: OnText | None,
) -> Said:
    """The agent's answer to an utterance; a greeting or re-prompt is the agent's own line, no model asked."""
    if request.kind is not TurnKind.UTTERANCE:
        return Said(_own_line(profile, request.kind))
    history = services.conversations.list_turns(request.conversation_id, last=services.settings.history_turns)
    model = chat_model_for(profile, services.settings, tools=toolbox.specs())
    answered = reply_to(
        profile,
        toolbox.retriever,
        text or "",
        history,
        request.summary,
        model=model,
        toolbox=toolbox,
        on_text=on_text,
        language=language,
    )
    return Said(answered.reply.text, answered.reply.intent, answered.llm, answered.citations)


def _store_sentence(services: Services, request: TurnInput, index: int, audio: Audio) -> str:
    name = sentence_audio_name(request.conversation_id, request.turn, index)
    services.audio.put(name, encode_wav(audio))
    return name


def _hand_over(services: Services, turn: TurnRecord) -> None:
    """Give the turn to the request waiting on it (there is none for a re-prompt)."""
    if turn.request_id is not None:
        services.publisher.publish(turn.conversation_id, turn.request_id, turn.model_dump(mode="json"))


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


def presence(services: Services, conversation_id: str) -> Presence:
    """A web session's connections as counted so far (a read: retried freely)."""
    from shared.realtime import presence as counted

    return counted.current(services.redis, services.settings.redis_key_prefix, conversation_id)


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
        telemetry.conversation_ended(request.outcome.value, [*(t.llm for t in turns), report.llm])
        conversation = repository.get(request.conversation_id)
    if conversation is None:
        raise LookupError(f"no conversation {request.conversation_id}")
    outcome = Outcome(conversation.outcome) if conversation.outcome else request.outcome
    services.publisher.announce_end(request.conversation_id, outcome.value)
    if services.realtime is not None and conversation.channel == WEB_CHANNEL:
        tell_ended(services.realtime, request.conversation_id, outcome.value)
    return ConversationSummary(
        conversation_id=request.conversation_id,
        outcome=outcome,
        summary=conversation.summary or "",
        turns=len(turns),
        extraction=conversation.extraction or {},
    )
