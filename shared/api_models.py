"""What the conversation routes answer, as pydantic models: the handlers build their JSON from these and
the OpenAPI document describes them from the same classes, so the two cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from shared.models import Citation, ExtractedValue, ModelUsage, ToolCall, TurnAction, TurnKind

Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda value: value.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An aware time, written as `datetime.isoformat()` (`+00:00`, as the routes always wrote it)."""


ConversationStatus = Literal["active", "ending", "completed"]


class ApiModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ErrorDetail(ApiModel):
    code: str = Field(description="Stable and machine-readable, e.g. `conversation_completed`.")
    message: str = Field(description="For people: what went wrong and what to do.")


class ErrorResponse(ApiModel):
    """Every 4xx and 5xx the app itself answers."""

    error: ErrorDetail


class StartError(ErrorResponse):
    """A start whose conversation exists but whose greeting did not come (a 504, say): it still takes turns."""

    conversation_id: str


class Reply(ApiModel):
    text: str
    audio_url: str = Field(description="GET it (with the same credentials) for the reply as WAV.")


class Started(ApiModel):
    conversation_id: str
    reply: Reply = Field(description="The agent's greeting.")
    replayed: bool = Field(description="True when an earlier start with the same Idempotency-Key made it.")


class TurnTimings(ApiModel):
    stt: float | None
    agent: float | None
    tts: float | None
    first_audio: float | None
    overhead: float | None = Field(description="Time outside speech and the agent (None for a replayed turn).")
    total: float


class TurnTaken(ApiModel):
    turn: int
    transcript: str | None = Field(description="What the caller said or typed.")
    intent: str | None
    reply: Reply
    action: TurnAction
    transfer_to: str | None
    timings_ms: TurnTimings
    replayed: bool


class StoredTimings(ApiModel):
    stt: float | None
    agent: float | None
    tts: float | None


class TranscriptTurn(ApiModel):
    turn: int
    kind: TurnKind
    text: str | None = Field(description="What the caller said or typed (None for the agent's own lines).")
    intent: str | None
    reply: Reply
    timings_ms: StoredTimings
    llm: ModelUsage | None = Field(description="None for greetings and re-prompts, which use no model.")
    action: TurnAction
    transfer_to: str | None
    tool_calls: list[ToolCall]
    citations: list[Citation]
    language: str | None
    stt_engine: str | None
    tts_engine: str | None
    written_reply: str | None = Field(
        default=None,
        description="When the listener spoke over the reply (barge-in): the whole reply the agent wrote; "
        "`reply.text` and its audio keep only what was heard.",
    )


class ConversationDetail(ApiModel):
    conversation_id: str
    agent: str
    language: str
    status: ConversationStatus
    outcome: str | None
    summary: str | None
    extraction: dict[str, ExtractedValue] | None = Field(description="The agent's extraction fields, once ended.")
    aftercall_llm: ModelUsage | None = Field(description="The model that wrote the summary and extraction.")
    call_duration_seconds: int | None = Field(
        default=None, description="A phone call's length as its provider reported it when the call ended."
    )
    recording_url: str | None = Field(
        default=None,
        description="The phone call's recording (its agent records calls), once the provider delivered it: GET it "
        "with the same credentials.",
    )
    recording_seconds: int | None = Field(default=None, description="The recording's length, as the provider said.")
    created_at: Timestamp
    ended_at: Timestamp | None
    turns: list[TranscriptTurn]


class Ending(ApiModel):
    conversation_id: str
    status: Literal["ending"]


class CheckResult(ApiModel):
    ok: bool
    ms: float | None = None
    error: str | None = None


class Health(ApiModel):
    status: Literal["ok", "degraded"]
    checks: dict[str, CheckResult]


class ProviderCheck(ApiModel):
    """A provider: whether this deployment uses it and, if so, whether it answered HTTP (no credentials sent)."""

    configured: bool
    ok: bool | None = None
    ms: float | None = None
    error: str | None = None


class Readiness(ApiModel):
    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, CheckResult]
    providers: dict[str, ProviderCheck]
