"""Domain types that cross a boundary: agent files, Durable inputs/outputs, event payloads.

Everything here is a frozen pydantic model so it serialises to the JSON the Durable runtime
stores and validates on the way back in.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SpeechProvider = Literal["auto", "sarvam", "offline"]
"""Which speech engine an agent wants: "auto" is Sarvam when configured, else the offline engines."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Intent(StrEnum):
    """What the caller wanted from a turn; drives the reply and the dialog policy."""

    GREETING = "greeting"
    QUESTION = "question"
    SMALL_TALK = "small_talk"
    HUMAN = "human"
    GOODBYE = "goodbye"
    NOT_UNDERSTOOD = "not_understood"


class TurnKind(StrEnum):
    """Who opened the turn: the agent's greeting, a caller utterance, or a silence re-prompt."""

    GREETING = "greeting"
    UTTERANCE = "utterance"
    REPROMPT = "reprompt"


class Outcome(StrEnum):
    COMPLETED = "completed"
    TRANSFERRED = "transferred"
    FAILED = "failed"
    NO_RESPONSE = "no_response"
    ENDED_BY_CLIENT = "ended_by_client"
    TERMINATED = "terminated"


class IntentRule(Frozen):
    """Phrases that signal an intent and, optionally, the agent's fixed reply to it."""

    phrases: list[str] = Field(default_factory=list)
    reply: str | None = None


class KnowledgeDocument(Frozen):
    title: str
    text: str


class AgentProfile(Frozen):
    """An agent as its file describes it (see `agents/*.toml`)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    display_name: str
    language: str = "en-US"
    voice: str = ""
    stt_provider: SpeechProvider = Field(default="auto", description="Who listens: auto, sarvam or offline.")
    tts_provider: SpeechProvider = Field(default="auto", description="Who speaks: auto, sarvam or offline.")
    speaker: str = Field(default="", description="Sarvam speaker (voice) name; empty: the model's default.")
    detect_language: bool = Field(
        default=False, description="Let Sarvam detect each utterance's language instead of assuming `language`."
    )
    greeting: str
    reprompt: str = "Are you still there?"
    not_understood: str = "Sorry, I did not catch that. Could you say it another way?"
    intents: dict[Intent, IntentRule] = Field(default_factory=dict)
    knowledge: list[KnowledgeDocument] = Field(default_factory=list)
    expected_phrases: list[str] = Field(
        default_factory=list,
        description="Extra sentences callers are likely to say; the offline recogniser listens for them.",
    )

    def listening_phrases(self) -> list[str]:
        """Every phrase the offline speech recogniser should expect for this agent."""
        phrases = [p for rule in self.intents.values() for p in rule.phrases]
        return list(dict.fromkeys([*phrases, *self.expected_phrases]))


class DialogPolicy(Frozen):
    """The settings the orchestrator needs, passed in as input so it never reads the environment."""

    silence_timeout_seconds: int
    max_silences: int
    turns_per_generation: int


class Utterance(Frozen):
    """The `utterance` event: what a caller said or typed, with the idempotency key of the request."""

    request_id: str = Field(min_length=1, max_length=256)
    text: str | None = None
    audio_blob: str | None = None


class ConversationState(Frozen):
    """The orchestrator's input and the state it carries across continue-as-new."""

    conversation_id: str
    agent: str
    language: str
    policy: DialogPolicy
    next_turn: int = 0
    utterances_heard: int = 0
    silences: int = 0
    turns_this_generation: int = 0
    summary: str = ""
    recent_request_ids: list[str] = Field(default_factory=list)
    pending_reply: str | None = Field(
        default=None, description="Request whose reply the next generation publishes first."
    )
    carried_utterance: Utterance | None = Field(
        default=None, description="An utterance the previous generation received but did not answer."
    )


class TurnInput(Frozen):
    """Input of the `respond` activity: one turn to answer and persist."""

    conversation_id: str
    agent: str
    language: str
    turn: int
    kind: TurnKind
    request_id: str | None = None
    text: str | None = None
    stt_ms: float | None = None
    summary: str = Field(default="", description="Earlier generations of the conversation, summarised.")


class TranscribeInput(Frozen):
    conversation_id: str
    agent: str
    language: str
    audio_blob: str


class Transcript(Frozen):
    """What the caller said, which engine heard it, and the language it heard (detected or assumed)."""

    text: str
    stt_ms: float
    engine: str | None = None
    language: str | None = None


class AgentReply(Frozen):
    """What the agent decided for a turn: the intent it recognised and what it says back."""

    intent: Intent
    text: str


class ModelUsage(Frozen):
    """Which language model answered a turn, what it cost in tokens, and an estimate in US dollars.

    Token counts are what the provider reported (None when a compatible server reports none); the cost is
    None for a model missing from the price table (`shared/agent/pricing.py`).
    """

    provider: str
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None


class AnsweredReply(Frozen):
    """The agent's reply and the usage of the model that produced it."""

    reply: AgentReply
    llm: ModelUsage


class TurnRecord(Frozen):
    """A persisted turn, as `respond` returns it and the conversation API shows it.

    `llm` is None for turns no model answered (greeting, re-prompt). `stt_engine` names the engine that
    heard a spoken utterance (None for typed turns and the agent's own lines), `tts_engine` the one that
    spoke the reply; both are set when the reply audio is stored.
    """

    conversation_id: str
    turn: int
    kind: TurnKind
    request_id: str | None
    user_text: str | None
    intent: Intent | None
    reply_text: str
    audio_blob: str | None = None
    stt_ms: float | None = None
    agent_ms: float | None = None
    tts_ms: float | None = None
    llm: ModelUsage | None = None
    stt_engine: str | None = None
    tts_engine: str | None = None


class SynthesizeInput(Frozen):
    conversation_id: str
    agent: str
    turn: int
    language: str
    text: str
    sample_rate: int = Field(default=16000, ge=8000, le=48000, description="The rate the channel plays (Hz).")


class SynthesizedAudio(Frozen):
    audio_blob: str
    tts_ms: float
    duration_seconds: float
    engine: str | None = None


class PublishInput(Frozen):
    conversation_id: str
    request_id: str


class PublishResult(Frozen):
    ending: bool = Field(description="The client has asked to end the conversation.")


class FinalizeInput(Frozen):
    conversation_id: str
    outcome: Outcome


class ConversationSummary(Frozen):
    conversation_id: str
    outcome: Outcome
    summary: str
    turns: int
