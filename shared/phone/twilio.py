"""Twilio Programmable Voice on the wire: webhook forms, their signature, and the TwiML we answer.

Pure functions over bytes and strings; the `twilio` SDK does what Twilio defines (the signature
algorithm, TwiML's element and attribute names), so our side cannot drift from theirs. The SDK loads
on a webhook's first call, not at import.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadRequest, Forbidden, PayloadTooLarge, UnsupportedMediaType
from shared.models import Outcome, PhoneListening

if TYPE_CHECKING:
    from twilio.twiml.voice_response import Gather, VoiceResponse

FORM_TYPE = "application/x-www-form-urlencoded"
TWIML_TYPE = "text/xml"
SIGNATURE_HEADER = "x-twilio-signature"
MAX_FORM_BYTES = 16 * 1024
"""A voice webhook is a few dozen short fields (about 1.5 KB with the geographic ones); a speech
result of a long sentence stays far below this."""
MAX_FORM_FIELDS = 64
MAX_FIELD_CHARS = 4096
CALL_SID = re.compile(r"CA[0-9a-f]{32}")
"""A call's id as Twilio writes it: `CA` and 32 lower-case hex digits."""
PHONE_RATE = 8000
"""The rate our `<Play>` links ask for: the phone network carries 8 kHz, so more is bytes nobody hears."""
MAX_HOLDS = 4
"""Fillers in a row for one reply before the call gives up on it (with the default deadline, ~40 s)."""
ENDED_STATUSES: dict[str, Outcome] = {
    "completed": Outcome.ENDED_BY_CLIENT,
    "busy": Outcome.BUSY,
    "failed": Outcome.CALL_FAILED,
    "no-answer": Outcome.NO_ANSWER,
    "canceled": Outcome.CANCELED,
}
"""`CallStatus` values after which the call is over, and the conversation's outcome for each (a call that
`completed` before the agent ended it is one the caller hung up)."""
OUTBOUND_DIRECTION = "outbound-api"
"""`Direction` of a call our app placed through the REST API (inbound calls say `inbound`)."""
MACHINE_ANSWERS = frozenset({"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"})
"""`AnsweredBy` values of answering-machine detection that are no person (twilio.com/docs/voice/
answering-machine-detection: with `Enable` human, machine_start, fax or unknown; with `DetectMessageEnd`
human, machine_end_beep, machine_end_silence, machine_end_other, fax or unknown). `unknown` (AMD could
not tell, often a quiet person) is greeted like `human`."""
MAX_CALL_SECONDS = 7 * 24 * 3600
"""Longer than any call Twilio lets run (its limit is 24 h): a bigger `CallDuration` is not Twilio's."""


class VoiceWebhook(BaseModel):
    """The fields of Twilio's voice webhooks this app reads (Twilio sends more; all are signed)."""

    model_config = ConfigDict(extra="allow")

    call_sid: str = Field(
        alias="CallSid", pattern=CALL_SID.pattern, description="The call: one conversation per CallSid."
    )
    account_sid: str = Field(
        alias="AccountSid", default="", description="Refused unless TWILIO_ACCOUNT_SID, when that is set."
    )
    to: str = Field(
        alias="To", default="", description="The number called: on an inbound call it decides the tenant and agent."
    )
    from_: str = Field(
        alias="From", default="", description="The caller: on a call we placed, the tenant's number it comes from."
    )
    direction: str = Field(
        alias="Direction", default="", description="`inbound`, or `outbound-api` for a call placed by POST /api/calls."
    )
    answered_by: str = Field(
        alias="AnsweredBy",
        default="",
        description="On a call we placed: answering-machine detection's verdict (human, machine_start, "
        "machine_end_beep, machine_end_silence, machine_end_other, fax, unknown).",
    )
    call_status: str = Field(
        alias="CallStatus", default="", description="On the status callback: completed, busy, failed, …."
    )
    recording_status: str = Field(
        alias="RecordingStatus", default="", description="On the recording callback: completed (kept), or another."
    )
    recording_url: str = Field(
        alias="RecordingUrl", default="", description="On the recording callback: the recording, in Twilio's REST API."
    )
    speech_result: str = Field(alias="SpeechResult", default="", description="On a gather: what the caller said.")
    digits: str = Field(alias="Digits", default="", description="On a gather: the keys the caller pressed.")


class Holding(BaseModel):
    """How many fillers the caller has heard while waiting, as our TwiML wrote it into a redirect URL."""

    model_config = ConfigDict(extra="forbid")

    wait: int = Field(default=0, ge=0, le=MAX_HOLDS, description="Fillers so far while the reply is late.")


class Answering(Holding):
    """The incoming URL's query: fillers heard so far, and for a call we placed (`POST /api/calls` wrote
    the answer URL) the call's conversation."""

    model_config = ConfigDict(extra="forbid")

    call: uuid.UUID | None = Field(
        default=None, description="Only on the answer URL of a call placed by POST /api/calls: its conversation."
    )


class GatherStep(Holding):
    """Where a call is, as our own TwiML wrote it into the gather URL (which Twilio signs with the form)."""

    model_config = ConfigDict(extra="forbid")

    turn: int = Field(ge=1, le=999_999_999, description="The caller's turn this gather hears: a retry is the same.")
    silences: int = Field(default=0, ge=0, le=99, description="Re-prompts in a row before this gather.")
    cut: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="On a gather around one sentence of the reply before: the sentences the caller had started "
        "hearing when they spoke over it (barge-in), so that reply keeps just those.",
    )


class ReplyStep(Holding):
    """Where the caller is in a reply played sentence by sentence, as our TwiML wrote it into a redirect:
    a retried redirect names the same sentence, so it plays the same audio."""

    model_config = ConfigDict(extra="forbid")

    turn: int = Field(ge=0, le=999_999_999, description="The caller's turn this reply answers (0: the greeting).")
    sentence: int = Field(default=0, ge=0, le=999, description="The next sentence to play.")
    attempt: int = Field(default=0, ge=0, le=999, description="Restarts of the reply stream already seen.")


Step = TypeVar("Step", bound=Holding)


def our_query(model: type[Step], query: dict[str, str]) -> Step:
    """The query our own TwiML wrote into a webhook URL; any other is a 400."""
    try:
        return model.model_validate(query)
    except ValidationError as error:
        raise BadRequest("The URL's query is not one this app writes.", code="malformed_query") from error


@dataclass(frozen=True)
class CallForm:
    """A voice webhook's form: every field as Twilio sent it, and the call it is about."""

    fields: dict[str, str]
    call_sid: str

    def get(self, name: str) -> str:
        return self.fields.get(name, "")


def parse_form(content_type: str | None, body: bytes) -> CallForm:
    """The webhook's fields, bounded before parsing; 415, 413 or 400 for anything Twilio never sends."""
    if (content_type or "").split(";", 1)[0].strip().lower() != FORM_TYPE:
        raise UnsupportedMediaType(f"A Twilio webhook is {FORM_TYPE}.")
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge(f"A Twilio webhook is at most {MAX_FORM_BYTES} bytes.")
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=bool(body),
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as error:
        raise BadRequest("The body is not a well-formed form.", code="malformed_form") from error
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise BadRequest("A form field appears twice.", code="malformed_form")
    if any(len(name) > MAX_FIELD_CHARS or len(value) > MAX_FIELD_CHARS for name, value in pairs):
        raise BadRequest(f"A form field is longer than {MAX_FIELD_CHARS} characters.", code="malformed_form")
    call_sid = fields.get("CallSid", "")
    if not CALL_SID.fullmatch(call_sid):
        raise BadRequest("CallSid is missing or not a Twilio call id.", code="malformed_form")
    return CallForm(fields, call_sid)


def is_outbound(form: CallForm) -> bool:
    """A call this app placed (`POST /api/calls`), not one that called in."""
    return form.get("Direction") == OUTBOUND_DIRECTION


def answered_by_machine(answered_by: str) -> bool:
    """Whether AMD's `AnsweredBy` says a machine took the call (absent: no detection ran, a person)."""
    return answered_by in MACHINE_ANSWERS


def recording_seconds(form: CallForm) -> int | None:
    """`RecordingDuration` of a recording status callback (whole seconds), None if absent; 400 if not one."""
    text = form.get("RecordingDuration")
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) > MAX_CALL_SECONDS:
        raise BadRequest("RecordingDuration is not a recording's length in seconds.", code="malformed_form")
    return int(text)


def recording_media_url(recording_url: str, api_base_url: str) -> str:
    """The WAV of a finished recording: its `RecordingUrl` (Twilio's REST API, no extension) with `.wav`;
    a URL anywhere else than TWILIO_API_BASE_URL's account recordings is a 400, never fetched."""
    base = api_base_url.rstrip("/")
    if not re.fullmatch(
        re.escape(base) + r"/2010-04-01/Accounts/AC[0-9a-f]{32}/Recordings/RE[0-9a-f]{32}", recording_url
    ):
        raise BadRequest("RecordingUrl is not a recording of Twilio's REST API.", code="malformed_form")
    return f"{recording_url}.wav"


def call_duration(form: CallForm) -> int | None:
    """`CallDuration` (whole seconds, sent when the call ends), None if absent; 400 if not a duration."""
    text = form.get("CallDuration")
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) > MAX_CALL_SECONDS:
        raise BadRequest("CallDuration is not a call's length in seconds.", code="malformed_form")
    return int(text)


def public_url(request_url: str, public_base_url: str) -> str:
    """The URL Twilio called, which its signature covers: behind a proxy, PUBLIC_BASE_URL's origin with
    the request's path and query; else the request's URL as the host hands it over."""
    if not public_base_url:
        return request_url
    parts = urlsplit(request_url)
    query = f"?{parts.query}" if parts.query else ""
    return f"{public_base_url.rstrip('/')}{parts.path}{query}"


def check_signature(auth_token: str, url: str, form: CallForm, signature: str | None) -> None:
    """Forbidden unless `X-Twilio-Signature` is Twilio's HMAC of this URL and form under our auth token."""
    from twilio.request_validator import RequestValidator

    if not signature or not RequestValidator(auth_token).validate(url, form.fields, signature):
        raise Forbidden("The request does not carry a valid Twilio signature.", code="invalid_signature")


@dataclass(frozen=True)
class Recording:
    """A call its agent records: what it says first, before recording starts (`<Say>`, then
    `<Start><Recording>`: twilio.com/docs/voice/twiml/recording), and where Twilio posts the recording."""

    consent: str
    callback: str


CUT_IN_TIMEOUT_SECONDS = 1
"""How long the gather around a sentence (not the last) listens after it: Twilio's least `timeout` (a
positive whole number of seconds), then the next sentence plays. The price of knowing which sentence
the caller spoke over."""


@dataclass(frozen=True)
class Sentence:
    """One sentence of a reply to play, and where the caller's words go if they speak over it (the gather
    of their next turn that marks the cut), or None when they cannot interrupt it."""

    audio_url: str
    cut_in: str | None = None


def _play(response: VoiceResponse, sentences: list[Sentence], language: str, listening: PhoneListening) -> None:
    """Each sentence played; one the caller may speak over is nested in its own `<Gather>`, which posts their
    words to its `cut_in` action and, if they keep silent, listens CUT_IN_TIMEOUT_SECONDS and moves on (no
    `actionOnEmptyResult`: the next verb plays)."""
    for sentence in sentences:
        if sentence.cut_in is None:
            response.play(sentence.audio_url)
            continue
        gather = _gather(response, sentence.cut_in, language, listening, cut_in=True)
        gather.play(sentence.audio_url)


def play_then(sentences: list[Sentence], redirect: str, language: str, listening: PhoneListening | None = None) -> str:
    """The sentences spoken so far, then back to `redirect` for the next ones: the caller hears the
    first sentence while the rest are still being written and spoken."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    _play(response, sentences, language, listening or PhoneListening())
    response.redirect(redirect, method="POST")
    return str(response)


def listen(action: str, language: str, *sentences: Sentence | str, listening: PhoneListening | None = None) -> str:
    """Play the agent's words (each sentence, or an audio link, in turn; or none when they have played
    already) and listen for the caller's answer (speech or keypad), which Twilio posts to `action`; a
    silent caller is posted too (no SpeechResult), so silence is ours to decide. Sentences the caller may
    cut short each play in their own gather (`_play`); the last, and any others, play inside this one."""
    from twilio.twiml.voice_response import VoiceResponse

    listening = listening or PhoneListening()
    played = [sentence if isinstance(sentence, Sentence) else Sentence(sentence) for sentence in sentences]
    split = max(0, len(played) - 1)
    while split and played[split - 1].cut_in is None:
        split -= 1
    response = VoiceResponse()
    _play(response, played[:split], language, listening)
    gather = _gather(response, action, language, listening)
    for sentence in played[split:]:
        gather.play(sentence.audio_url)
    return str(response)


def prompt_again(action: str, language: str, words: str, listening: PhoneListening | None = None) -> str:
    """Ask a silent caller again, in Twilio's voice: the agent's re-prompt has no recording of ours."""
    response, gather = _listening(action, language, listening or PhoneListening())
    gather.say(words, language=language)
    return str(response)


def _listening(action: str, language: str, listening: PhoneListening) -> tuple[VoiceResponse, Gather]:
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    return response, _gather(response, action, language, listening)


def _gather(
    response: VoiceResponse, action: str, language: str, listening: PhoneListening, *, cut_in: bool = False
) -> Gather:
    """A `<Gather>` that listens for speech or keypad and posts to `action`, even on silence; or, to
    `cut_in` on a sentence, posts only what the caller says and moves on after CUT_IN_TIMEOUT_SECONDS.

    Without a speech model, `speechTimeout="auto"` ends the turn when Twilio hears the caller stop, the
    shortest wait it offers; Twilio refuses `auto` beside a model (its warning 13335), so a model comes
    with a whole number of seconds. `bargeIn` is Twilio's default (the caller may interrupt), written
    only when the agent turns it off.
    """
    model = listening.speech_model
    options: dict[str, object] = {"speech_model": model} if model else {}
    if not listening.barge_in:
        options["barge_in"] = False
    if cut_in:
        options["timeout"] = CUT_IN_TIMEOUT_SECONDS
    else:
        options["action_on_empty_result"] = True
    return response.gather(
        input="dtmf speech",
        action=action,
        method="POST",
        language=language,
        speech_timeout=listening.speech_timeout_seconds if model else "auto",
        **options,
    )


def recorded(twiml: str, recording: Recording, language: str) -> str:
    """`twiml` (the call's first answer) preceded by the consent line and the start of the recording:
    Twilio records from `<Start><Recording>` on, so the consent is said before anything is recorded."""
    from xml.etree import ElementTree

    from twilio.twiml.voice_response import VoiceResponse

    prelude = VoiceResponse()
    prelude.say(recording.consent, language=language)
    prelude.start().recording(
        recording_status_callback=recording.callback,
        recording_status_callback_method="POST",
        recording_status_callback_event="completed",
    )
    response = ElementTree.fromstring(twiml)
    for index, verb in enumerate(ElementTree.fromstring(str(prelude))):
        response.insert(index, verb)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(response, encoding="unicode")


def hold_on(redirect: str, language: str, words: str) -> str:
    """A short filler, then back to `redirect`, which keeps waiting for the same reply: the webhook
    answers inside Twilio's 15 s and the call stays up however long the reply takes."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(words, language=language)
    response.pause(length=1)
    response.redirect(redirect, method="POST")
    return str(response)


def finish(audio_urls: list[str], transfer_to: str | None = None) -> str:
    """The agent's last words (those not played yet), then the call is handed to `transfer_to` or hung up."""
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    for audio_url in audio_urls:
        response.play(audio_url)
    if transfer_to:
        response.dial(transfer_to)
    else:
        response.hangup()
    return str(response)


def hang_up() -> str:
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.hangup()
    return str(response)


def say_and_hang_up(language: str, words: str) -> str:
    from twilio.twiml.voice_response import VoiceResponse

    response = VoiceResponse()
    response.say(words, language=language)
    response.hangup()
    return str(response)
