"""Domain types that cross a boundary: agent files, Durable inputs/outputs, event payloads.

Everything here is a frozen pydantic model so it serialises to the JSON the Durable runtime
stores and validates on the way back in.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from shared.tenancy import TENANT_ID

SpeechProvider = Literal["auto", "sarvam", "offline"]
"""Which speech engine an agent wants: "auto" is Sarvam when configured, else the offline engines."""


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


PHONE_NUMBER = r"^\+[1-9][0-9]{6,14}$"
"""E.164: what phone providers dial."""
PhoneProvider = Literal["twilio", "vonage", "amazon_connect"]
"""Who carries a phone number's calls to us."""
AgentSource = Literal["file", "api"]
"""Where an agent comes from: its file in AGENTS_DIR (the demo tenant's), or the admin API."""
TOOL_NAME = r"^[a-zA-Z][a-zA-Z0-9_]{0,63}$"
"""What OpenAI's tool calling accepts as a function name (and a readable subset of it)."""
BUILT_IN_TOOLS = frozenset({"search_knowledge", "transfer_to_human", "end_call", "schedule_callback"})
TenantId = Annotated[str, StringConstraints(pattern=rf"^{TENANT_ID.pattern}$")]
"""Whose conversation: carried in every Durable input, since an activity has no caller to learn it from."""


class Intent(StrEnum):
    """What the caller wanted from a turn; drives the reply and the dialog policy."""

    GREETING = "greeting"
    QUESTION = "question"
    SMALL_TALK = "small_talk"
    HUMAN = "human"
    GOODBYE = "goodbye"
    CALLBACK = "callback"
    NOT_UNDERSTOOD = "not_understood"


class TurnKind(StrEnum):
    """Who opened the turn: the agent's greeting, a caller utterance, or a silence re-prompt."""

    GREETING = "greeting"
    UTTERANCE = "utterance"
    REPROMPT = "reprompt"
    VOICEMAIL = "voicemail"
    """The agent's message left on an answering machine that took its outbound call."""


class Outcome(StrEnum):
    COMPLETED = "completed"
    TRANSFERRED = "transferred"
    FAILED = "failed"
    NO_RESPONSE = "no_response"
    ENDED_BY_CLIENT = "ended_by_client"
    TERMINATED = "terminated"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    CANCELED = "canceled"
    CALL_FAILED = "call_failed"
    """The phone network could not connect the call (a provider's `failed`), not a fault of ours."""
    VOICEMAIL = "voicemail"
    """An outbound call an answering machine took: the agent left its voicemail message."""
    ANSWERING_MACHINE = "answering_machine"
    """An outbound call a machine (answering machine or fax) took: hung up, nothing said."""
    DISCONNECTED = "disconnected"
    """A web session's client went away and did not come back within REALTIME_DISCONNECT_GRACE_SECONDS."""


INTENT_NAME = r"^[a-z][a-z0-9_]{0,39}$"


def _built_in_intent(value: object) -> object:
    """A built-in intent's name becomes its `Intent`; an agent's own intent stays a string."""
    if isinstance(value, str) and not isinstance(value, Intent) and value in Intent._value2member_map_:
        return Intent(value)
    return value


IntentName = Annotated[
    Intent | Annotated[str, StringConstraints(pattern=INTENT_NAME)], BeforeValidator(_built_in_intent)
]
"""An intent from the agent's list: a built-in one (`Intent`) or one its file declares (a name)."""


class IntentRule(Frozen):
    """Phrases that signal an intent and, optionally, the agent's fixed reply to it; an intent of the
    agent's own says what it means in `description` (the model reads it)."""

    phrases: list[str] = Field(default_factory=list)
    reply: str | None = None
    description: str = Field(default="", max_length=300)


class KnowledgeDocument(Frozen):
    """One `[[knowledge]]` entry of an agent file: its text inline, or a file path relative to the agent file."""

    title: str
    text: str = ""
    path: str = ""

    @model_validator(mode="after")
    def _text_or_path(self) -> KnowledgeDocument:
        if bool(self.text.strip()) == bool(self.path.strip()):
            raise ValueError(f"knowledge entry {self.title!r} needs either text or path, not both")
        return self


class ModelParameters(Frozen):
    """How the agent's language model writes: bounded so one agent file cannot run up a bill."""

    temperature: float = Field(default=0.3, ge=0, le=2)
    max_tokens: int = Field(default=300, ge=16, le=4096, description="Longest reply, in tokens.")


class PhoneListening(Frozen):
    """How a phone provider listens for the agent's callers (Twilio's `<Gather>`).

    With no speech model Twilio picks the recogniser for the call's language, fails over between
    providers, and ends the caller's turn on its own end-of-speech detection (`speechTimeout="auto"`),
    the shortest wait it offers. A model (twilio.com/docs/voice/twiml/gather#speechmodel) pins one
    recogniser; Twilio then accepts only a whole number of seconds of silence as the end of a turn."""

    speech_model: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="Twilio speechModel (e.g. phone_call, googlev2_telephony, deepgram_nova-3); none: Twilio's choice.",
    )
    speech_timeout_seconds: int = Field(
        default=2, ge=1, le=10, description="Silence that ends the caller's turn when a speech model is set."
    )
    barge_in: bool = Field(default=True, description="The caller may speak over the agent's words and be heard.")


class HttpMethod(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class HttpTool(Frozen):
    """A tool the agent may call on the caller's behalf: one HTTP endpoint of the agent owner's.

    GET and DELETE send the arguments as query parameters, the others as a JSON body. Only hosts in
    HTTP_TOOL_ALLOWED_HOSTS are reached. `offline_pattern` (a regex whose named groups are the
    arguments) and `offline_reply` (a template over the JSON answer's fields) let the offline model
    call the tool deterministically.
    """

    name: str = Field(pattern=TOOL_NAME)
    description: str = Field(min_length=1, max_length=1024)
    url: str = Field(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=2048)
    method: HttpMethod = HttpMethod.POST
    parameters: dict[str, object] = Field(
        default_factory=lambda: dict[str, object](type="object", properties={}),
        description="JSON Schema of the arguments (an object schema).",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, le=10)
    offline_pattern: str | None = Field(default=None, max_length=500)
    offline_reply: str | None = Field(default=None, max_length=1000)

    @model_validator(mode="after")
    def _arguments_are_an_object_schema(self) -> HttpTool:
        from jsonschema import Draft202012Validator, SchemaError

        if self.parameters.get("type") != "object":
            raise ValueError('parameters must be a JSON Schema with "type": "object"')
        try:
            Draft202012Validator.check_schema(self.parameters)
        except SchemaError as error:
            raise ValueError(f"parameters is not a valid JSON Schema: {error.message}") from None
        if self.offline_pattern is not None:
            try:
                groups = set(re.compile(self.offline_pattern).groupindex)
            except re.error as error:
                raise ValueError(f"offline_pattern is not a regular expression: {error}") from None
            properties = self.parameters.get("properties")
            unknown = groups - set(properties if isinstance(properties, dict) else {})
            if unknown:
                raise ValueError(f"offline_pattern names arguments the parameters do not have: {sorted(unknown)}")
        return self


class ExtractionField(Frozen):
    """One fact the agent pulls out of a finished call (name, order number, callback time, ...)."""

    description: str = Field(min_length=1, max_length=500)
    type: Literal["string", "number", "integer", "boolean"] = "string"


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
    intents: dict[IntentName, IntentRule] = Field(
        default_factory=dict,
        description="Phrases and replies per intent: the built-in ones, and the agent's own (with a description).",
    )
    knowledge: list[KnowledgeDocument] = Field(default_factory=list)
    expected_phrases: list[str] = Field(
        default_factory=list,
        description="Extra sentences callers are likely to say; the offline recogniser listens for them.",
    )
    instructions: str = Field(
        default="", max_length=8000, description="The agent's own system prompt: persona, rules, what it may do."
    )
    model: ModelParameters = Field(default_factory=ModelParameters)
    transfer_number: str | None = Field(
        default=None, pattern=PHONE_NUMBER, description="Where `transfer_to_human` sends the caller (E.164)."
    )
    phone: PhoneListening = Field(default_factory=PhoneListening)
    recording: bool = Field(
        default=False,
        description="Record this agent's phone calls (Twilio, Vonage): the call opens with `recording_consent`, then "
        "recording starts; the recording is kept with the conversation.",
    )
    recording_consent: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="What a recorded call says first, before recording starts (required with `recording`).",
    )
    voicemail_message: str | None = Field(
        default=None,
        min_length=1,
        max_length=1500,
        description="What the agent leaves on an answering machine that takes its outbound call (after the beep). "
        "None: the call hangs up on a machine.",
    )
    tools: list[HttpTool] = Field(default_factory=list, max_length=32)
    extraction: dict[str, ExtractionField] = Field(
        default_factory=dict, description="Facts filled in from the whole call when it ends."
    )

    @model_validator(mode="after")
    def _recording_asks_consent(self) -> AgentProfile:
        if self.recording and not (self.recording_consent or "").strip():
            raise ValueError("recording needs recording_consent: a recorded call says so first")
        return self

    @model_validator(mode="after")
    def _tool_names_are_unique(self) -> AgentProfile:
        names = [tool.name for tool in self.tools]
        taken = sorted({n for n in names if names.count(n) > 1} | (set(names) & BUILT_IN_TOOLS))
        if taken:
            raise ValueError(f"tool names must be unique and not those of the built-in tools: {taken}")
        return self

    def intent_names(self) -> list[str]:
        """Every intent a turn of this agent may record: the built-in ones, then the agent's own."""
        own = [str(name) for name in self.intents if not isinstance(name, Intent)]
        return [*(i.value for i in Intent), *own]

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
    received_at: float | None = Field(
        default=None, description="When the channel received it (Unix seconds): first audio is timed from here."
    )
    trace: str | None = Field(
        default=None, max_length=128, description="W3C traceparent of the request that brought it (telemetry)."
    )


class Answered(Frozen):
    """The `answered` event of an outbound call: who picked up, as the provider's answering-machine
    detection tells it, and whether the agent has a message to leave on a machine."""

    machine: bool = Field(description="A machine (answering machine or fax) took the call, not a person.")
    leave_message: bool = Field(default=False, description="The agent has a voicemail message to leave.")


class Presence(Frozen):
    """A web session's connections as the event handler last counted them: the `presence-<seq>` event
    (one per connect or disconnect, numbered in the order they were counted) and the `presence` activity."""

    seq: int = Field(ge=0, description="How many connects and disconnects the conversation has seen.")
    connected: bool = Field(description="At least one connection of the conversation is open.")


class ConversationState(Frozen):
    """The orchestrator's input and the state it carries across continue-as-new."""

    conversation_id: str
    tenant: TenantId
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
    greeting_trace: str | None = Field(
        default=None,
        max_length=128,
        description="W3C traceparent of the request that started the conversation: the greeting's spans join it.",
    )
    ringing_seconds: int | None = Field(
        default=None,
        ge=1,
        le=3600,
        description="An outbound call: how long to wait for it to be answered before greeting (no answer by then: "
        "the conversation ends `no_answer`). None: an inbound call or a client's, greeted at once.",
    )
    disconnect_grace_seconds: int | None = Field(
        default=None,
        ge=1,
        description="A web session: how long it outlives its client's last connection (it ends `disconnected` "
        "unless the client reconnects). None: not a web session, presence is not followed.",
    )
    presence_seen: int | None = Field(
        default=0,
        ge=0,
        description="The last `presence-<seq>` event taken; None: ask the `presence` activity first (a new "
        "generation: events the last one did not take were dropped).",
    )
    client_gone: bool = Field(default=False, description="A web session's client has no open connection.")


class TurnInput(Frozen):
    """Input of the `answer_turn` activity: one turn to hear (if spoken), answer, speak and hand over."""

    conversation_id: str
    tenant: TenantId
    agent: str
    language: str
    turn: int
    kind: TurnKind
    request_id: str | None = None
    text: str | None = None
    audio_blob: str | None = Field(default=None, description="The caller's recording, when the turn was spoken.")
    summary: str = Field(default="", description="Earlier generations of the conversation, summarised.")
    next_event: str | None = Field(
        default=None,
        description="The event name of the caller's next utterance, announced before any audio of this reply.",
    )
    received_at: float | None = None
    sample_rate: int = Field(default=16000, ge=8000, le=48000, description="The rate the channel plays (Hz).")
    trace: str | None = Field(
        default=None,
        max_length=128,
        description="W3C traceparent the turn's spans join: the orchestrator passes it along, never makes one.",
    )


class Transcript(Frozen):
    """What the caller said, which engine heard it, and the language it heard (detected or assumed)."""

    text: str
    stt_ms: float
    engine: str | None = None
    language: str | None = None


class AgentReply(Frozen):
    """What the agent decided for a turn: the intent it recognised, what it says back, and the ids of the
    knowledge passages it answered from."""

    intent: IntentName
    text: str
    cites: list[str] = Field(default_factory=list, max_length=20)


class Citation(Frozen):
    """A knowledge chunk a reply was answered from, as stored with the turn."""

    chunk_id: str
    document_id: str | None = None
    title: str = ""
    source: str | None = None


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


class TurnAction(StrEnum):
    """What the call does after this turn's reply, as the agent's tools decided."""

    CONTINUE = "continue"
    END_CALL = "end_call"
    TRANSFER = "transfer"


class ToolCall(Frozen):
    """One tool the agent called during a turn, as stored with the turn."""

    name: str
    arguments: dict[str, object]
    result: str = Field(description="What the tool answered (what the model read), cut to a bounded length.")
    error: bool = False
    started_at: str = Field(description="ISO 8601 UTC time the call started.")
    ms: float


class AnsweredReply(Frozen):
    """The agent's reply, the usage of the model that produced it, and what its tools did."""

    reply: AgentReply
    llm: ModelUsage
    tool_calls: list[ToolCall] = Field(default_factory=list)
    action: TurnAction = TurnAction.CONTINUE
    transfer_to: str | None = None
    citations: list[Citation] = Field(default_factory=list)


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
    intent: IntentName | None
    reply_text: str
    audio_blob: str | None = None
    stt_ms: float | None = None
    agent_ms: float | None = None
    tts_ms: float | None = None
    llm: ModelUsage | None = None
    action: TurnAction = TurnAction.CONTINUE
    transfer_to: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stt_engine: str | None = None
    tts_engine: str | None = None
    first_audio_ms: float | None = Field(
        default=None, description="From the utterance reaching the channel to its reply's first audio being announced."
    )
    citations: list[Citation] = Field(default_factory=list)
    language: str | None = Field(default=None, description="The language the reply was written and spoken in.")
    written_reply: str | None = Field(
        default=None,
        description="The whole reply the agent wrote, when the listener cut it short (`reply_text`: heard).",
    )


class PublishInput(Frozen):
    conversation_id: str
    tenant: TenantId
    request_id: str


class PublishResult(Frozen):
    ending: bool = Field(description="The client has asked to end the conversation.")


class SummarizeInput(Frozen):
    conversation_id: str
    tenant: TenantId


class PresenceInput(Frozen):
    conversation_id: str
    tenant: TenantId


class FinalizeInput(Frozen):
    conversation_id: str
    tenant: TenantId
    outcome: Outcome


ExtractedValue = str | int | float | bool | None
"""One extraction field's value: of the field's declared type, or None when the call did not say."""


class AfterCallReport(Frozen):
    """What the after-call model made of a conversation: its summary and the agent's extraction fields.

    `extraction` has every field the agent declares; `llm` is None when no model answered (the summary is
    then the deterministic one).
    """

    summary: str
    extraction: dict[str, ExtractedValue]
    llm: ModelUsage | None


class ConversationSummary(Frozen):
    conversation_id: str
    outcome: Outcome
    summary: str
    turns: int
    extraction: dict[str, ExtractedValue] = Field(default_factory=dict)
