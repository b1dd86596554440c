"""What `POST /api/calls` takes and answers: an outbound call an agent places, as pydantic models."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from shared.admin_models import AgentName, E164Number
from shared.api_models import ApiModel

OutboundProvider = Literal["twilio", "vonage"]


class CallRequest(ApiModel):
    to: E164Number = Field(description="The number to call, E.164 (`+14155552671`), valid where it belongs.")
    agent: AgentName = Field(description="One of your agents: it greets whoever answers and takes the call.")
    provider: OutboundProvider = Field(description="Who carries the call; the caller id is a number you hold there.")


class PlacedCall(ApiModel):
    """A call the provider accepted to place: it rings now; the conversation follows it."""

    conversation_id: str = Field(description="The call's conversation: GET /api/conversations/{id} follows it.")
    provider: OutboundProvider
    call_id: str = Field(description="The provider's id of the call (Twilio `CA…`).")
    status: str = Field(description="The provider's status when it took the call (Twilio: `queued`).")
    to: str
    caller_id: str = Field(description="The number the call comes from: one you hold for the provider.")
    replayed: bool = Field(default=False, description="True when this answers a retry with the same Idempotency-Key.")
