"""Vonage Voice API on the wire: signed webhooks, their bounded bodies, and the NCCO we answer.

Vonage signs every voice webhook with `Authorization: Bearer <JWT>`, HS256 under the account's
signature secret; the token's `payload_hash` is the hex SHA-256 of the payload, which for a POST is the
body as sent and for a GET the query parameters as a compact JSON object in the order sent. The
`vonage-jwt` library checks the token, the `vonage-voice` NCCO models write the actions, so our side
cannot drift from theirs; both load on a webhook's first call, not at import.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import BadRequest, Forbidden, PayloadTooLarge, UnsupportedMediaType
from shared.models import Outcome
from shared.phone.twilio import MAX_CALL_SECONDS
from shared.tenancy import TENANT_ID

JSON_TYPE = "application/json"
MAX_BODY_BYTES = 16 * 1024
"""A voice webhook is a dozen short fields; a speech result of a long sentence stays far below this."""
MAX_QUERY_FIELDS = 64
MAX_FIELD_CHARS = 4096
MAX_TOKEN_CHARS = 4096
MAX_TOKEN_AGE_SECONDS = 300
"""A token issued longer ago is refused: the signature does not cover the URL (our input's `turn`), so a
captured webhook could otherwise be replayed against another turn at any later time (within this age, the
token's `jti` is remembered: `shared/storage/webhook_tokens.py`)."""
MAX_TOKEN_ID_CHARS = 128
"""A `jti` is a UUID; a longer one is not Vonage's, and would only make a long Redis key."""
CALL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A call leg's id as Vonage writes it (`uuid`): one conversation per leg."""
MAX_HOLDS = 4
"""Fillers in a row for one reply before the call gives up on it (with the default deadline, ~40 s)."""
ENDED_STATUSES: dict[str, Outcome] = {
    "completed": Outcome.ENDED_BY_CLIENT,
    "busy": Outcome.BUSY,
    "failed": Outcome.CALL_FAILED,
    "rejected": Outcome.CALL_FAILED,
    "timeout": Outcome.NO_ANSWER,
    "unanswered": Outcome.NO_ANSWER,
    "cancelled": Outcome.CANCELED,
}
"""Event `status` values after which the call is over (Vonage's Voice API webhook reference lists them),
and the conversation's outcome for each, as Twilio's are kept: a call that `completed` before the agent
ended it is one the caller hung up; `rejected` (refused before it connected) is a network failure, and
`timeout` (rang out) is no answer."""
MAX_WAIT_SECONDS = 4.0
"""The longest a webhook waits for a reply, whatever PHONE_REPLY_DEADLINE_SECONDS says: Vonage wants the
answer webhook's NCCO within 5 s (and retries, then gives up on the call), so a late reply is a filler."""
MAX_DIGITS = 20
"""The most keys one input takes (`maxDigits`, which Vonage caps at 20): a longer `digits` is not Vonage's."""
KEYPAD_TIMEOUT_SECONDS = 5
"""Keys are submitted this long after the last one (or at once on `#`): time to find the next key."""
HOLD_SECONDS = 1
"""How long the input after a filler listens before Vonage posts back: Vonage has no redirect, so an
input that times out at once is the way back to our route for the same turn."""
CUT_IN_SECONDS = 1
"""How long the input after a sentence of a reply still going on listens (Vonage's least `startTimeout`)
before Vonage posts back for the next sentence. A `stream` the caller may speak over (`bargeIn`) must be
followed by an `input`, which hears them; `notify`, which could fetch the next sentence without a pause,
may not follow it (developer.vonage.com/en/voice/voice-api/ncco-reference#stream)."""


class SpeechResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: str = Field(default="", max_length=MAX_FIELD_CHARS)


class Speech(BaseModel):
    model_config = ConfigDict(extra="allow")

    results: list[SpeechResult] = Field(default_factory=list, max_length=10)
    timeout_reason: str = Field(default="", max_length=64)


class Keypad(BaseModel):
    """The keys the caller pressed, as an input webhook's `dtmf` reports them."""

    model_config = ConfigDict(extra="allow")

    digits: str | None = Field(
        default=None, max_length=MAX_DIGITS, pattern=r"^[0-9*#]*$", description="The keys, in order: 0-9, * and #."
    )
    timed_out: bool = Field(default=False, description="Input ended by the keypad timeout, not by `#` or the count.")


class CallFields(BaseModel):
    """The fields of every Vonage voice webhook this app reads (Vonage sends more; the payload is signed);
    the answer webhook is these alone, in the query of a GET."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    uuid: str = Field(pattern=CALL_UUID.pattern, description="The call leg: one conversation per uuid.")
    conversation_uuid: str = Field(default="", max_length=64, description="Vonage's conversation (CON-…).")
    to: str = Field(default="", max_length=64, description="The number called: it decides the tenant and agent.")
    from_: str = Field(default="", alias="from", max_length=64, description="The caller.")


class VoiceWebhook(CallFields):
    """A webhook's JSON body: the call's fields, and an event's status or an input's speech."""

    status: str = Field(default="", max_length=64, description="On an event: started, answered, completed, ….")
    duration: int | None = Field(
        default=None,
        ge=0,
        le=MAX_CALL_SECONDS,
        description='On `completed`: the call\'s length in whole seconds (Vonage writes it as a string, "42").',
    )
    speech: Speech | None = Field(default=None, description="On an input: what Vonage recognised.")
    dtmf: Keypad | None = Field(default=None, description="On an input: the keys the caller pressed.")

    @field_validator("duration", mode="before")
    @classmethod
    def _whole_seconds(cls, value: object) -> object:
        """Digits (or a JSON integer), never `1.5`, ` 42` or another script's digits."""
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
            return int(value)
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ValueError("duration is the call's length in whole seconds")

    def heard(self) -> str:
        """The caller's words (Vonage lists its most confident result first), else the keys they
        pressed, as Twilio's `Digits` are taken; '' is silence."""
        for result in self.speech.results if self.speech else []:
            if result.text.strip():
                return result.text.strip()
        return (self.dtmf.digits or "") if self.dtmf else ""


class Holding(BaseModel):
    """How many fillers the caller has heard while waiting, as our NCCO wrote it into an eventUrl."""

    model_config = ConfigDict(extra="forbid")

    wait: int = Field(default=0, ge=0, le=MAX_HOLDS, description="Fillers so far while the reply is late.")


VERDICTS = frozenset({"human", "machine"})
"""Event `status` values that are machine detection's verdict on a call we placed (developer.vonage.com/en/
voice/voice-api/concepts/advanced-machine-detection): `human`, or `machine` (with `sub_state`
`beep_start` or `beep_timeout` in `detect_beep` mode)."""


class Answering(Holding):
    """The answer URL of a call we placed, as `POST /api/calls` wrote it: the call's conversation."""

    call: uuid.UUID = Field(description="The conversation made when the call was placed.")


class PlacedEvents(Holding):
    """The event URL of a call we placed, as `POST /api/calls` wrote it: its conversation and tenant, so an
    event sent before the call was noted (a call refused at once, a quick verdict) still finds them."""

    call: uuid.UUID | None = Field(default=None, description="The conversation made when the call was placed.")
    tenant: str | None = Field(default=None, pattern=f"^{TENANT_ID.pattern}$", description="Whose call it is.")


class InputStep(Holding):
    """Where a call is, as our own NCCO wrote it into the input's eventUrl."""

    turn: int = Field(ge=1, le=999_999_999, description="The caller's turn this input hears: a retry is the same.")
    silences: int = Field(default=0, ge=0, le=99, description="Re-prompts in a row before this input.")


class ReplyStep(Holding):
    """Where the caller is in a reply played sentence by sentence, as our NCCO wrote it into the eventUrl of
    the input after a sentence: silence there plays the next sentence (a retry the same one); words are the
    caller's next turn, spoken over the reply after hearing `sentence` of its sentences."""

    turn: int = Field(ge=0, le=999_999_999, description="The caller's turn this reply answers (0: the greeting).")
    sentence: int = Field(default=0, ge=0, le=999, description="The next sentence to play.")
    attempt: int = Field(default=0, ge=0, le=999, description="Restarts of the reply stream already seen.")


Step = TypeVar("Step", bound=Holding)


OUR_QUERY_FIELDS = (
    frozenset(InputStep.model_fields)
    | frozenset(ReplyStep.model_fields)
    | frozenset(Answering.model_fields)
    | frozenset(PlacedEvents.model_fields)
)
"""Query fields our own URLs carry (a GET answer's query mixes them with Vonage's)."""


@dataclass(frozen=True)
class Signed:
    """What a Vonage token vouches for: the application, the token itself (`jti`) and the payload's hash."""

    application_id: str
    token_id: str
    payload_hash: str


class RecordingWebhook(BaseModel):
    """A `record` action's event: where the finished recording is (developer.vonage.com/en/voice/voice-api/
    webhook-reference#recording: `recording_url`, `recording_uuid`, `conversation_uuid`, `size`, times)."""

    model_config = ConfigDict(extra="allow")

    recording_url: str = Field(max_length=512, description="The recording, behind the application's JWT.")
    recording_uuid: str = Field(pattern=CALL_UUID.pattern)
    conversation_uuid: str = Field(min_length=1, max_length=64, description="The call's Vonage conversation.")
    size: int | None = Field(default=None, ge=0, description="Bytes.")
    start_time: str = Field(default="", max_length=64)
    end_time: str = Field(default="", max_length=64)


@dataclass(frozen=True)
class Webhook:
    """A signed webhook: the call it is about, and (for GET) the query Vonage sent, which is its payload."""

    call: VoiceWebhook
    ours: dict[str, str]
    signed: Signed


def _query_pairs(query: str) -> list[tuple[str, str]]:
    try:
        pairs = parse_qsl(
            query, keep_blank_values=True, strict_parsing=bool(query), errors="strict", max_num_fields=MAX_QUERY_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest("The query is not well formed.", code="malformed_query") from error
    if any(len(name) > MAX_FIELD_CHARS or len(value) > MAX_FIELD_CHARS for name, value in pairs):
        raise BadRequest(f"A query field is longer than {MAX_FIELD_CHARS} characters.", code="malformed_query")
    if len(dict(pairs)) != len(pairs):
        raise BadRequest("A query field appears twice.", code="malformed_query")
    return pairs


def _payload_hash(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def query_payload(pairs: list[tuple[str, str]]) -> bytes:
    """A GET webhook's payload as Vonage hashes it: the query as a JSON object, in order, no whitespace."""
    return json.dumps(dict(pairs), separators=(",", ":"), ensure_ascii=False).encode()


def check_signature(secret: str, authorization: str | None, payload: bytes) -> Signed:
    """What the token vouches for, once `Authorization` is a Vonage token under our signature secret, with
    a `jti`, whose `payload_hash` is the payload's; else Forbidden."""
    import jwt
    from vonage_jwt import verify_signature
    from vonage_jwt.errors import VonageVerifyJwtError

    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise Forbidden("The request does not carry a Vonage signature.", code="invalid_signature")
    try:
        if not verify_signature(token, secret):
            raise Forbidden("The request does not carry a valid Vonage signature.", code="invalid_signature")
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["iat", "jti"]})
    except (VonageVerifyJwtError, jwt.PyJWTError) as error:
        raise Forbidden("The request does not carry a valid Vonage token.", code="invalid_signature") from error
    if time.time() - float(claims["iat"]) > MAX_TOKEN_AGE_SECONDS:
        raise Forbidden("The Vonage token is too old.", code="invalid_signature")
    claimed = claims.get("payload_hash")
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed.lower(), _payload_hash(payload)):
        raise Forbidden("The payload is not the one Vonage signed.", code="invalid_signature")
    token_id = claims["jti"]
    if not isinstance(token_id, str) or not token_id or len(token_id) > MAX_TOKEN_ID_CHARS:
        raise Forbidden("The Vonage token has no usable jti.", code="invalid_signature")
    application = claims.get("application_id")
    return Signed(application if isinstance(application, str) else "", token_id, claimed.lower())


def verified(
    secret: str, method: str, query: str, content_type: str | None, body: bytes, *, authorization: str | None
) -> Webhook:
    """The webhook, bounded, then signature-checked, then parsed: 4xx for anything Vonage never sends.

    A GET's payload is its query (Vonage's fields and ours, as sent); a POST's is its JSON body, and its
    query is ours alone (our eventUrl's)."""
    pairs = _query_pairs(query)
    if method.upper() == "GET":
        signed = check_signature(secret, authorization, query_payload(pairs))
        fields: Any = dict(pairs)
        ours = {name: value for name, value in pairs if name in OUR_QUERY_FIELDS}
    else:
        fields, signed = _signed_json(secret, content_type, body, authorization)
        ours = dict(pairs)
    try:
        return Webhook(VoiceWebhook.model_validate(fields), ours, signed)
    except ValidationError as error:
        raise BadRequest(
            "The webhook has no Vonage call uuid, or a field out of bounds.", code="malformed_body"
        ) from error


def verified_recording(
    secret: str, content_type: str | None, body: bytes, *, authorization: str | None
) -> tuple[RecordingWebhook, Signed]:
    """A `record` action's event (POST JSON, signed like every webhook), parsed: 4xx otherwise."""
    fields, signed = _signed_json(secret, content_type, body, authorization)
    try:
        return RecordingWebhook.model_validate(fields), signed
    except ValidationError as error:
        raise BadRequest("The body is not a Vonage recording event.", code="malformed_body") from error


def _signed_json(
    secret: str, content_type: str | None, body: bytes, authorization: str | None
) -> tuple[dict[str, Any], Signed]:
    if (content_type or "").split(";", 1)[0].strip().lower() != JSON_TYPE:
        raise UnsupportedMediaType(f"A Vonage webhook is {JSON_TYPE}.")
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"A Vonage webhook is at most {MAX_BODY_BYTES} bytes.")
    signed = check_signature(secret, authorization, body)
    try:
        fields = json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest("The body is not JSON.", code="malformed_body") from error
    if not isinstance(fields, dict):
        raise BadRequest("The body is not a JSON object.", code="malformed_body")
    return fields, signed


def our_query(model: type[Step], query: dict[str, str]) -> Step:
    """The query our own NCCO wrote into a webhook URL; any other is a 400."""
    try:
        return model.model_validate(query)
    except ValidationError as error:
        raise BadRequest("The URL's query is not one this app writes.", code="malformed_query") from error


def _ncco(*actions: BaseModel) -> list[dict[str, Any]]:
    """The NCCO: the actions as Vonage's own models write them, unset options left out."""
    return [action.model_dump(mode="json", by_alias=True, exclude_none=True) for action in actions]


def _input(event_url: str, language: str, start_timeout: int = 10, *, keypad: bool = True) -> Any:
    """Listen for the caller's speech (and, with `keypad`, keys), posted to `event_url`; silence is posted
    too, so it is ours to decide. `endOnSilence` 0.8 s ends a turn soon after the caller stops, without
    cutting short pauses; keys end it on `#`, after MAX_DIGITS, or KEYPAD_TIMEOUT_SECONDS after the last
    (the NCCO reference's `dtmf` options: `timeOut` 0-10 s, `maxDigits` 1-20, `submitOnHash`)."""
    from vonage_voice.models import Dtmf, Input
    from vonage_voice.models import Speech as NccoSpeech

    speech = NccoSpeech(language=language, endOnSilence=0.8, startTimeout=start_timeout, maxDuration=60)
    if not keypad:
        return Input(type=["speech"], eventUrl=[event_url], eventMethod="POST", speech=speech)
    return Input(
        type=["dtmf", "speech"],
        eventUrl=[event_url],
        eventMethod="POST",
        speech=speech,
        dtmf=Dtmf(maxDigits=MAX_DIGITS, submitOnHash=True, timeOut=KEYPAD_TIMEOUT_SECONDS),
    )


def listen(event_url: str, language: str, audio_urls: list[str], *, barge_in: bool = True) -> list[dict[str, Any]]:
    """Play the agent's words (the caller may interrupt them, as the agent allows) and listen for the answer."""
    from vonage_voice.models import Stream

    streams = [Stream(streamUrl=[url], bargeIn=True) if barge_in else Stream(streamUrl=[url]) for url in audio_urls]
    return _ncco(*streams, _input(event_url, language))


def speak_on(audio_urls: list[str], event_url: str, language: str, *, barge_in: bool) -> list[dict[str, Any]]:
    """Sentences of a reply that goes on, then an input that comes back to `event_url` for the next ones
    after CUT_IN_SECONDS of silence, or with the caller's words if they speak (over the sentence, when
    `barge_in`: then give one sentence at a time, so the words say which one was cut short)."""
    from vonage_voice.models import Stream

    streams = [Stream(streamUrl=[url], bargeIn=True) if barge_in else Stream(streamUrl=[url]) for url in audio_urls]
    return _ncco(*streams, _input(event_url, language, start_timeout=CUT_IN_SECONDS, keypad=False))


def prompt_again(event_url: str, language: str, words: str) -> list[dict[str, Any]]:
    """Ask a silent caller again, in Vonage's voice: the agent's re-prompt has no recording of ours."""
    from vonage_voice.models import Talk

    return _ncco(Talk(text=words, language=language, bargeIn=True), _input(event_url, language))


def hold_on(event_url: str, language: str, words: str) -> list[dict[str, Any]]:
    """A short filler, then an input that times out at once back to `event_url`, which keeps waiting for
    the same reply: the webhook answers in time and the call stays up however long the reply takes.
    It hears no keys: a key would hold the input open for the keypad timeout."""
    from vonage_voice.models import Talk

    holding = _input(event_url, language, start_timeout=HOLD_SECONDS, keypad=False)
    return _ncco(Talk(text=words, language=language), holding)


def finish(audio_urls: list[str], transfer_to: str | None = None, caller_id: str = "") -> list[dict[str, Any]]:
    """The agent's last words, then the call is connected to `transfer_to` (showing `caller_id`, the
    number that was called, one of the application's; else one Vonage picks), or ends with the NCCO."""
    from vonage_voice.models import Connect, PhoneEndpoint, Stream

    played = [Stream(streamUrl=[url]) for url in audio_urls]
    if not transfer_to:
        return _ncco(*played)
    shown = caller_id.lstrip("+")
    endpoint = [PhoneEndpoint(number=transfer_to.lstrip("+"))]
    if re.fullmatch(r"[1-9][0-9]{6,14}", shown):
        return _ncco(*played, Connect(endpoint=endpoint, from_=shown))
    return _ncco(*played, Connect(endpoint=endpoint, randomFromNumber=True))


def recorded(ncco: list[dict[str, Any]], consent: str, language: str, event_url: str) -> list[dict[str, Any]]:
    """`ncco` (the call's first) after the consent line and a `record` of the whole call (asynchronous: it
    runs until the call ends, then posts the recording to `event_url`)."""
    from vonage_voice.models import Record, Talk

    prelude = _ncco(
        Talk(text=consent, language=language), Record(format="wav", eventUrl=[event_url], eventMethod="POST")
    )
    return prelude + ncco


def say_and_hang_up(language: str, words: str) -> list[dict[str, Any]]:
    """Words in Vonage's voice, then the call ends (an NCCO that runs out hangs up)."""
    from vonage_voice.models import Talk

    return _ncco(Talk(text=words, language=language))
