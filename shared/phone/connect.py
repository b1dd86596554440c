"""Amazon Connect on the wire: the bridge Lambda's signed requests, the contact-flow event they carry,
and the flat string map the flow reads back.

A contact flow cannot call HTTPS itself; its "AWS Lambda function" block (flow action
`InvokeLambdaFunction`) invokes our bridge Lambda (integrations/amazon-connect/) with the event
`{"Name": "ContactFlowEvent", "Details": {"ContactData": {...}, "Parameters": {...}}}`, and the Lambda
forwards it here, signed with CONNECT_BRIDGE_SECRET. The answer must be a flat object of strings: the
block's `ResponseValidation` is `STRING_MAP`, and the flow reads each key as `$.External.<key>`
(docs.aws.amazon.com/connect/latest/APIReference/interactions-invokelambdafunction.html). The whole
invocation, the Lambda's own HTTPS call included, has at most 8 s (`InvocationTimeLimitSeconds`).

The signature is ours (Connect signs nothing the Lambda passes on): HMAC-SHA256 under the shared
secret over `<timestamp>.<raw body>`, `X-Bridge-Signature: v1=<hex>`, with `X-Bridge-Timestamp` in
Unix seconds no further than MAX_SKEW_SECONDS from now, so a captured request cannot be replayed
later. The standard library's `hmac` is the maintained implementation (the Lambda uses it too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import BadRequest, Forbidden, PayloadTooLarge, UnsupportedMediaType

JSON_TYPE = "application/json"
TIMESTAMP_HEADER = "x-bridge-timestamp"
SIGNATURE_HEADER = "x-bridge-signature"
SIGNATURE_VERSION = "v1"
MAX_BODY_BYTES = 32 * 1024
"""A contact-flow event is a few dozen short fields (the contact's attributes included); far below this."""
MAX_SKEW_SECONDS = 300
"""A request signed longer ago (or later) than this is refused: the replay bound."""
MAX_PARAMETERS = 32
MAX_PARAMETER_CHARS = 1024
MAX_WAIT_SECONDS = 5.0
"""The longest the route waits for a reply, whatever PHONE_REPLY_DEADLINE_SECONDS says: the flow gives
the Lambda at most 8 s, its HTTPS call included, so a later reply is a filler and the flow comes back."""
MAX_HOLDS = 4
"""Fillers in a row for one reply before the call gives up on it (at 5 s each, ~25 s)."""
CONTACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A contact's id as Connect writes it: one conversation per contact."""
DISCONNECT = "disconnect"
"""The `event` parameter of the disconnect flow's invocation: the caller hung up."""


class Action(StrEnum):
    """What the flow does after speaking `reply_text`."""

    CONTINUE = "continue"
    TRANSFER = "transfer"
    END = "end"


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    address: str = Field(alias="Address", default="", max_length=64, description="A phone number (E.164).")
    type: str = Field(alias="Type", default="", max_length=64, description="TELEPHONE_NUMBER for a call.")


class ContactData(BaseModel):
    """The contact fields this app reads (Connect sends many more)."""

    model_config = ConfigDict(extra="ignore")

    contact_id: str = Field(alias="ContactId", pattern=CONTACT_ID.pattern, description="One conversation each.")
    customer: Endpoint = Field(alias="CustomerEndpoint", default_factory=Endpoint, description="The caller.")
    system: Endpoint = Field(
        alias="SystemEndpoint", default_factory=Endpoint, description="The number called: it picks the agent."
    )


class Details(BaseModel):
    model_config = ConfigDict(extra="ignore")

    contact: ContactData = Field(alias="ContactData")
    parameters: dict[str, str] = Field(
        alias="Parameters",
        default_factory=dict,
        max_length=MAX_PARAMETERS,
        description="The block's LambdaInvocationAttributes: our step, and what the caller said.",
    )

    @field_validator("parameters")
    @classmethod
    def _bounded(cls, value: dict[str, str]) -> dict[str, str]:
        if any(len(k) > MAX_PARAMETER_CHARS or len(v) > MAX_PARAMETER_CHARS for k, v in value.items()):
            raise ValueError(f"a parameter is longer than {MAX_PARAMETER_CHARS} characters")
        return value


class ContactFlowEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(alias="Name", pattern=r"^ContactFlowEvent$", description="Always ContactFlowEvent.")
    details: Details = Field(alias="Details")


class Step(BaseModel):
    """Where the call is, as our last map told the flow (it keeps `turn`, `silences` and `wait` as contact
    attributes and passes them back), and what the caller said since (`customer_input`; empty: silence).

    Turn 0 is the call's start: the greeting. Parameters of the flow's own (any other name) are ignored."""

    model_config = ConfigDict(extra="ignore")

    turn: int = Field(default=0, ge=0, le=99999, description="The turn this invocation is for (0: greeting).")
    silences: int = Field(default=0, ge=0, le=99, description="Re-prompts in a row before this input.")
    wait: int = Field(default=0, ge=0, le=MAX_HOLDS, description="Fillers so far while this reply is late.")
    customer_input: str = Field(default="", description="What the caller said (Lex transcript or keys).")
    event: str = Field(default="", pattern=rf"^({DISCONNECT})?$", description="`disconnect`: the call is over.")

    @field_validator("turn", "silences", "wait", mode="before")
    @classmethod
    def _blank_is_zero(cls, value: object) -> object:
        """An attribute the flow never set arrives as an empty string."""
        return 0 if value == "" else value


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp` (what the Lambda sends)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def check_signature(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float | None = None
) -> None:
    """Forbidden unless `signature` is ours over `timestamp` and `body`, and `timestamp` is recent."""
    if not timestamp or not signature or len(timestamp) > 16 or len(signature) > 128:
        raise Forbidden("The request does not carry a bridge signature.", code="invalid_signature")
    if not timestamp.isdigit():
        raise Forbidden("The bridge timestamp is not Unix seconds.", code="invalid_signature")
    if abs((time.time() if now is None else now) - int(timestamp)) > MAX_SKEW_SECONDS:
        raise Forbidden("The bridge timestamp is too old or in the future.", code="invalid_signature")
    if not hmac.compare_digest(signature.strip().encode(), sign(secret, timestamp, body).encode()):
        raise Forbidden("The request does not carry a valid bridge signature.", code="invalid_signature")


def verified(
    secret: str, content_type: str | None, body: bytes, *, timestamp: str | None, signature: str | None
) -> tuple[ContactData, Step]:
    """The contact and our step, bounded, then signature-checked, then parsed: 4xx for anything the
    bridge never sends."""
    if (content_type or "").split(";", 1)[0].strip().lower() != JSON_TYPE:
        raise UnsupportedMediaType(f"A bridge request is {JSON_TYPE}.")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"A bridge request is at most {MAX_BODY_BYTES} bytes.")
    check_signature(secret, timestamp, signature, body)
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest("The body is not JSON.", code="malformed_body") from error
    try:
        event = ContactFlowEvent.model_validate(fields)
    except ValidationError as error:
        raise BadRequest(
            "The body is not a contact-flow event with a ContactId, or a field is out of bounds.", code="malformed_body"
        ) from error
    try:
        step = Step.model_validate(event.details.parameters)
    except ValidationError as error:
        raise BadRequest("The flow's parameters are not ones this app writes.", code="malformed_parameters") from error
    return event.details.contact, step


def answer(
    action: Action,
    reply_text: str,
    *,
    audio_url: str = "",
    turn: int = 0,
    silences: int = 0,
    wait: int = 0,
    listen: bool = True,
    transfer_to: str = "",
    language: str = "en-US",
) -> dict[str, str]:
    """The flat string map the flow reads (every key always present, so `$.External.<key>` resolves)."""
    return {
        "action": action.value,
        "reply_text": reply_text,
        "audio_url": audio_url,
        "listen": "true" if listen and action is Action.CONTINUE else "false",
        "turn": str(turn),
        "silences": str(silences),
        "wait": str(wait),
        "transfer_to": transfer_to,
        "language": language,
    }
