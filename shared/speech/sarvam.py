"""Sarvam AI speech through the official `sarvamai` SDK: saaras listens, bulbul speaks.

Facts this module relies on (sarvamai 0.1.39, read in its source):
- `SarvamAI(api_subscription_key=..., environment=SarvamAIEnvironment(base=...), timeout=...)`; the key
  travels in the `api-subscription-key` header. The SDK's own debug log does not redact that header,
  so the SDK logger is left silent (its default).
- `speech_to_text.transcribe(file=..., model=..., language_code=...)` posts multipart to
  `/speech-to-text`; `language_code="unknown"` asks the API to detect the language, which comes
  back in `language_code`.
- `text_to_speech.convert(text=..., language_code=..., speaker=..., speech_sample_rate=..., model=...)`
  posts JSON to `/text-to-speech` and answers `audios`: base64 WAVs.
- Errors are `sarvamai.core.api_error.ApiError` subclasses carrying `status_code`, response `headers`
  and `body` (`{"error": {"message", "code"}}`; a wrong key is a 403 `invalid_api_key_error`).
  Timeouts and refused connections are raw `httpx` exceptions.
- The SDK retries 429/5xx itself, sleeping up to 60 s on `Retry-After`, and its retry of a
  multipart request drops the form fields (model, language). So its retries are switched off
  (`max_retries: 0`) and this module retries once, briefly, itself.

The SDK is imported on first use, never when the function app is imported (cold start).
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from shared.errors import InvalidAudio
from shared.speech.audio import Audio, decode_wav, encode_wav, resample
from shared.speech.ports import Heard, Hearing, Speaking, SpeechUnavailable, Spoken
from shared.speech.sentences import pieces

if TYPE_CHECKING:
    from sarvamai import SarvamAI

log = logging.getLogger(__name__)

ENGINE = "sarvam"
DETECT = "unknown"
"""The `language_code` that asks Sarvam to detect the spoken language."""

TTS_LANGUAGES = frozenset(
    {"bn-IN", "en-IN", "gu-IN", "hi-IN", "kn-IN", "ml-IN", "mr-IN", "od-IN", "pa-IN", "ta-IN", "te-IN"}
)
"""What bulbul speaks (the SDK's `TextToSpeechLanguage`)."""
STT_LANGUAGES = TTS_LANGUAGES | frozenset(
    {"as-IN", "ur-IN", "ne-IN", "kok-IN", "ks-IN", "sd-IN", "sa-IN", "sat-IN", "mni-IN", "brx-IN", "mai-IN", "doi-IN"}
)
"""What saaras hears (the SDK's `SpeechToTextLanguage`, less "unknown")."""

TEXT_LIMITS = {"bulbul:v2": 1500, "bulbul:v3": 2500, "bulbul:v4-flash": 2500}
"""Characters per text-to-speech request, per model (the SDK's `convert` docstring)."""
DEFAULT_TEXT_LIMIT = 1500
"""For a model missing above: the smallest limit is safe for every model."""

RETRIES = 1
"""One more attempt after a 429 or 5xx; then the next engine answers (a caller is waiting)."""
MAX_RETRY_WAIT_SECONDS = 1.0
"""A longer `Retry-After` is not waited for: the offline engine answers at once instead."""
DEFAULT_RETRY_WAIT_SECONDS = 0.25
VENDOR_AUDIO_MAX_SECONDS = 600.0
"""Bound on one answer's audio when decoding it (2,500 characters are a few minutes of speech)."""

NO_SDK_RETRIES: Any = {"max_retries": 0}
OMIT: Any = ...
"""What the SDK's generated methods take for "leave this field out of the request"."""

Result = TypeVar("Result")


class SpeechRejected(RuntimeError):
    """Sarvam refused a request as our mistake (a wrong key, a bad request): fix it, do not fall back."""


def sarvam_language(tag: str, supported: frozenset[str]) -> str | None:
    """Sarvam's code for a BCP-47 tag: `hi-IN` as is, any English as `en-IN`, Odia's `or` as `od`;
    None for a language Sarvam lacks."""
    language = tag.strip().split("-")[0].lower()
    if language == "en":
        return "en-IN"
    if language == "or":
        language = "od"
    code = f"{language}-IN"
    return code if code in supported else None


class SarvamConnection:
    """One SDK client per process (its httpx connection pool is thread-safe), built on first use."""

    def __init__(self, api_key: str, base_url: str, timeout_seconds: float) -> None:
        if not api_key:
            raise ValueError("a Sarvam API key is required")
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self._lock = threading.Lock()
        self._client: SarvamAI | None = None

    def __repr__(self) -> str:
        return f"SarvamConnection(base_url={self._base_url!r}, timeout_seconds={self.timeout_seconds})"

    def _sdk(self) -> SarvamAI:
        with self._lock:
            if self._client is None:
                from sarvamai import SarvamAI
                from sarvamai.environment import SarvamAIEnvironment

                websocket = "ws" + self._base_url.removeprefix("http")
                environment = SarvamAIEnvironment(
                    base=self._base_url, creative=f"{self._base_url}/dubbing", production=websocket
                )
                self._client = SarvamAI(
                    api_subscription_key=self._api_key, environment=environment, timeout=self.timeout_seconds
                )
            return self._client

    def call(self, what: str, request: Callable[[SarvamAI], Result]) -> Result:
        """Run one SDK request: transient failures become `SpeechUnavailable`, our mistakes `SpeechRejected`."""
        import httpx
        import pydantic
        from sarvamai.core.api_error import ApiError

        for attempt in range(RETRIES + 1):
            try:
                return request(self._sdk())
            except ApiError as error:
                status = error.status_code or 0
                detail = _describe(error.body)
                if status == 429 or status >= 500 or 200 <= status < 300:
                    wait = _retry_wait(error.headers)
                    if attempt < RETRIES and wait is not None:
                        log.info("Sarvam %s answered HTTP %s (%s); retrying in %.2f s", what, status, detail, wait)
                        time.sleep(wait)
                        continue
                    raise SpeechUnavailable(f"Sarvam {what} answered HTTP {status} ({detail})") from error
                hint = " Check SARVAM_API_KEY." if status in (401, 403) else ""
                log.error("Sarvam %s refused the request: HTTP %s (%s).%s", what, status, detail, hint)
                raise SpeechRejected(f"Sarvam {what} refused the request: HTTP {status} ({detail}).{hint}") from error
            except httpx.TimeoutException as error:
                raise SpeechUnavailable(f"Sarvam {what} gave no answer within {self.timeout_seconds:g} s") from error
            except httpx.TransportError as error:
                raise SpeechUnavailable(f"Sarvam {what} could not be reached ({type(error).__name__})") from error
            except pydantic.ValidationError as error:
                raise SpeechUnavailable(f"Sarvam {what} answered a body the SDK cannot read") from error
        raise AssertionError("unreachable: the last attempt returns or raises")


def _describe(body: object) -> str:
    """`code: message` of a Sarvam error body, short; never the request (which holds no key anyway)."""
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            code, message = error.get("code"), error.get("message")
            return f"{code}: {message}"[:300] if code or message else str(dict(error))[:300]
    return str(body)[:300]


def _retry_wait(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait before the retry, or None when `Retry-After` asks longer than we wait."""
    value = (headers or {}).get("retry-after")
    if value is None:
        return DEFAULT_RETRY_WAIT_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(seconds, 0.0) if seconds <= MAX_RETRY_WAIT_SECONDS else None


class SarvamSpeechToText:
    """`SpeechToText` with Sarvam's saaras (or saarika) model."""

    def __init__(self, connection: SarvamConnection, model: str) -> None:
        self._connection = connection
        self._model = model

    def transcribe(self, audio: Audio, hearing: Hearing) -> Heard:
        code = DETECT if hearing.detect_language else sarvam_language(hearing.language, STT_LANGUAGES)
        if code is None:
            raise SpeechUnavailable(f"Sarvam does not recognise {hearing.language!r}")
        wav = encode_wav(audio)
        response = self._connection.call(
            "speech-to-text",
            lambda sdk: sdk.speech_to_text.transcribe(
                file=("utterance.wav", wav, "audio/wav"),
                model=self._model,
                language_code=code,
                request_options=NO_SDK_RETRIES,
            ),
        )
        assumed = hearing.language if code == DETECT else code
        return Heard(text=response.transcript.strip(), engine=ENGINE, language=response.language_code or assumed)


class SarvamTextToSpeech:
    """`TextToSpeech` with Sarvam's bulbul model: text cut at sentence ends into requests within the
    model's limit, each answered at the channel's rate, the audios joined in order."""

    def __init__(self, connection: SarvamConnection, model: str) -> None:
        self._connection = connection
        self._model = model
        self.text_limit = TEXT_LIMITS.get(model, DEFAULT_TEXT_LIMIT)

    def synthesize(self, text: str, speaking: Speaking) -> Spoken:
        code = sarvam_language(speaking.language, TTS_LANGUAGES)
        if code is None:
            raise SpeechUnavailable(f"Sarvam does not speak {speaking.language!r}")
        chunks = pieces(text, self.text_limit)
        if not chunks:
            raise ValueError("Cannot synthesise empty text")
        parts = [self._speak(chunk, code, speaking) for chunk in chunks]
        samples = np.concatenate([p.samples for part in parts for p in part])
        return Spoken(audio=Audio(samples, speaking.rate), engine=ENGINE)

    def _speak(self, chunk: str, code: str, speaking: Speaking) -> list[Audio]:
        response = self._connection.call(
            "text-to-speech",
            lambda sdk: sdk.text_to_speech.convert(
                text=chunk,
                language_code=code,
                speaker=speaking.speaker or OMIT,
                speech_sample_rate=speaking.rate,
                model=self._model,
                request_options=NO_SDK_RETRIES,
            ),
        )
        if not response.audios:
            raise SpeechUnavailable("Sarvam text-to-speech answered no audio")
        try:
            decoded = [
                decode_wav(base64.b64decode(b64, validate=True), VENDOR_AUDIO_MAX_SECONDS) for b64 in response.audios
            ]
        except (binascii.Error, ValueError, InvalidAudio) as error:
            raise SpeechUnavailable(f"Sarvam text-to-speech answered audio we cannot read: {error}") from error
        return [resample(audio, speaking.rate) for audio in decoded]
