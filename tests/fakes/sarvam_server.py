"""A fake Sarvam AI REST server on loopback: speech-to-text and text-to-speech, with scripted behaviour.

It answers what the `sarvamai` SDK sends (0.1.39, read in its source):
- `POST /speech-to-text`, multipart: `file` (the audio) and form fields `model`, `language_code`, ...
  -> `{"request_id", "transcript", "timestamps", "language_code", "language_probability"}`. With
  `language_code=unknown` it "detects" `detected_language` (probability 0.93); otherwise it answers
  the language asked for, probability null (as the SDK's docstring says the API does).
- `POST /text-to-speech`, JSON `{"text", "language_code", "speaker", "speech_sample_rate", "model", ...}`
  (older clients: `inputs` and `target_language_code`) -> `{"request_id", "audios": [<base64 WAV>]}`:
  a real WAV (a tone, 60 ms per character) at the requested rate (22,050 Hz when none is asked).
Requests are checked as the API checks them: the `api-subscription-key` header (403
`invalid_api_key_error` when wrong), the model, the language, the sample rate and the per-model text
limit (400 `invalid_request_error`). Error bodies are Sarvam's `{"error": {"message", "code",
"request_id"}}` (docs.sarvam.ai, Errors & Troubleshooting; the SDK's `ErrorMessage` type).

Each request takes the next scripted behaviour (a 429 with Retry-After, a 500, a slow answer); with the
script empty it takes the standing behaviour (`always`, none by default: answer). A latency profile
(`stt_seconds`, `tts_seconds_per_sentence`) delays answers like the real service, for benchmarks.
Every request is recorded (path, headers, form fields or JSON body, file bytes).
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import re
import threading
import wave
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import BodyPartReader, web

from tests.fakes.loopback import LoopbackFake

TTS_LANGUAGES = frozenset(
    {"bn-IN", "en-IN", "gu-IN", "hi-IN", "kn-IN", "ml-IN", "mr-IN", "od-IN", "pa-IN", "ta-IN", "te-IN"}
)
STT_LANGUAGES = TTS_LANGUAGES | {"unknown", "as-IN", "ur-IN", "ne-IN", "kok-IN", "ks-IN", "sd-IN", "sa-IN"}
STT_MODELS = frozenset({"saaras:v3", "saaras:v4", "saarika:v2.5", "saarika:v2"})
TEXT_LIMITS = {"bulbul:v2": 1500, "bulbul:v3": 2500, "bulbul:v4-flash": 2500}
SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100, 48000})
DEFAULT_SAMPLE_RATE = 22050
SECONDS_PER_CHARACTER = 0.06
_SENTENCE_END = re.compile(r"[.!?।॥]+")


@dataclass(frozen=True)
class RateLimited:
    retry_after_seconds: int = 0


@dataclass(frozen=True)
class ServerError:
    pass


@dataclass(frozen=True)
class Slow:
    """Answers only after `seconds`: longer than the client's timeout, it is a timeout."""

    seconds: float


Behaviour = RateLimited | ServerError | Slow


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    fields: dict[str, Any]
    """Form fields (speech-to-text) or the JSON body (text-to-speech)."""
    file: bytes | None = None


@dataclass
class FakeSarvamServer(LoopbackFake):
    """Start with `with FakeSarvamServer(api_key=...) as server:`; `server.url` is its origin."""

    _thread_name = "fake-sarvam"

    api_key: str = "sarvam-fake-key"
    transcript: str = "नमस्ते, मुझे मदद चाहिए"
    detected_language: str = "hi-IN"
    stt_seconds: float = 0.0
    tts_seconds_per_sentence: float = 0.0
    always: Behaviour | None = None
    answer_rate: int | None = None
    """Answer audio at this rate whatever was asked (None: the requested rate, as the API does)."""
    requests: list[RecordedRequest] = field(default_factory=list)
    _script: deque[Behaviour] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, *behaviours: Behaviour) -> None:
        """The next requests' behaviours, in order; afterwards the standing one."""
        with self._lock:
            self._script.extend(behaviours)

    def reset(self) -> None:
        """Forget the script, the standing behaviour and the recorded requests."""
        with self._lock:
            self._script.clear()
            self.always = None
            self.answer_rate = None
            self.requests.clear()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def _application(self) -> web.Application:
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_post("/speech-to-text", self._speech_to_text)
        app.router.add_post("/text-to-speech", self._text_to_speech)
        return app

    def _next(self) -> Behaviour | None:
        with self._lock:
            return self._script.popleft() if self._script else self.always

    def _request_id(self) -> str:
        return f"20260101_fake-{next(self._ids):06d}"

    async def _misbehave(self) -> web.Response | None:
        """The scripted failure for this request, or None to answer (after any scripted delay)."""
        match self._next():
            case RateLimited(seconds):
                body = _error_body("Rate limit exceeded. Please retry later.", "rate_limit_exceeded_error")
                return _json(429, body, {"Retry-After": str(seconds)})
            case ServerError():
                return _json(500, _error_body("Internal server error", "internal_server_error"))
            case Slow(seconds):
                await asyncio.sleep(seconds)
        return None

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("api-subscription-key") != self.api_key:
            body = _error_body("Invalid API key. Please check your API key and try again.", "invalid_api_key_error")
            return _json(403, body)
        return None

    async def _speech_to_text(self, request: web.Request) -> web.Response:
        fields: dict[str, Any] = {}
        audio: bytes | None = None
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.name == "file":
                audio = await part.read()
            else:
                fields[part.name] = await part.text()
        self.requests.append(RecordedRequest(request.path, dict(request.headers), fields, audio))
        refused = self._refused(request)
        if refused is not None:
            return refused
        failed = await self._misbehave()
        if failed is not None:
            return failed
        if audio is None or not _is_wav(audio):
            return _json(400, _error_body("Invalid audio file: send a WAV file as `file`.", "invalid_request_error"))
        model = fields.get("model", "saaras:v3")
        language = fields.get("language_code", "unknown")
        if model not in STT_MODELS:
            return _json(400, _error_body(f"Invalid model: {model}", "invalid_request_error"))
        if language not in STT_LANGUAGES:
            return _json(400, _error_body(f"Invalid language_code: {language}", "invalid_request_error"))
        await asyncio.sleep(self.stt_seconds)
        detecting = language == "unknown"
        return _json(
            200,
            {
                "request_id": self._request_id(),
                "transcript": self.transcript,
                "timestamps": None,
                "language_code": self.detected_language if detecting else language,
                "language_probability": 0.93 if detecting else None,
            },
        )

    async def _text_to_speech(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(RecordedRequest(request.path, dict(request.headers), body))
        refused = self._refused(request)
        if refused is not None:
            return refused
        failed = await self._misbehave()
        if failed is not None:
            return failed
        texts = body["inputs"] if "inputs" in body else [body.get("text")]
        language = body.get("language_code", body.get("target_language_code"))
        model = body.get("model") or "bulbul:v3"
        rate = body.get("speech_sample_rate") or DEFAULT_SAMPLE_RATE
        speaker = body.get("speaker")
        problem = None
        if model not in TEXT_LIMITS:
            problem = f"Invalid model: {model}"
        elif language not in TTS_LANGUAGES:
            problem = f"Invalid language_code: {language}"
        elif rate not in SAMPLE_RATES:
            problem = f"Invalid speech_sample_rate: {rate}"
        elif speaker is not None and (not isinstance(speaker, str) or speaker != speaker.lower()):
            problem = f"Invalid speaker: {speaker} (speaker names are lowercase)"
        elif not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            problem = "text must not be empty"
        elif any(len(t) > TEXT_LIMITS[model] for t in texts):
            problem = f"Text is longer than {TEXT_LIMITS[model]} characters, the limit of {model}"
        if problem is not None:
            return _json(400, _error_body(problem, "invalid_request_error"))
        sentences = sum(max(1, len(_SENTENCE_END.findall(t))) for t in texts)
        await asyncio.sleep(self.tts_seconds_per_sentence * sentences)
        audios = [
            base64.b64encode(tone_wav(len(t) * SECONDS_PER_CHARACTER, self.answer_rate or rate)).decode() for t in texts
        ]
        return _json(200, {"request_id": self._request_id(), "audios": audios})


def tone_wav(seconds: float, rate: int) -> bytes:
    """A 16-bit mono WAV of a 220 Hz tone (half amplitude) lasting `seconds` at `rate` Hz."""
    count = max(1, round(seconds * rate))
    samples = (0.5 * 32767 * np.sin(2 * np.pi * 220 * np.arange(count) / rate)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def _is_wav(data: bytes) -> bool:
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            return reader.getnframes() > 0
    except (wave.Error, EOFError):
        return False


def _error_body(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "code": code, "request_id": None}}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)
