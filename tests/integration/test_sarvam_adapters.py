"""Sarvam speech through the real `sarvamai` SDK against the fake Sarvam server, and its fallback.

The adapters and the chains are the product's own (`shared/speech/`); only the vendor is faked, at
its HTTP wire format, so what is checked here is what the SDK really sends and what we make of it.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import numpy as np
import pytest

from shared.speech.audio import Audio, encode_wav
from shared.speech.espeak import EspeakSynthesizer
from shared.speech.fallback import OFFLINE, Choice, FallbackSpeechToText, FallbackTextToSpeech, SpeechNotConfigured
from shared.speech.offline import OfflineSpeechToText, OfflineTextToSpeech
from shared.speech.pocketsphinx import PocketsphinxRecognizer
from shared.speech.ports import Hearing, Speaking, SpeechToText, TextToSpeech
from shared.speech.sarvam import SarvamConnection, SarvamSpeechToText, SarvamTextToSpeech, SpeechRejected
from tests.fakes.sarvam_server import SECONDS_PER_CHARACTER, FakeSarvamServer, RateLimited, ServerError, Slow

KEY = "sk-sarvam-integration-never-logged"
HINDI = "नमस्ते, चाय पॉइंट कैफ़े में आपका स्वागत है। हम सुबह आठ बजे खुलते हैं।"
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSarvamServer]:
    with FakeSarvamServer(api_key=KEY) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh(fake: FakeSarvamServer) -> None:
    fake.reset()


def connection(fake: FakeSarvamServer, key: str = KEY, timeout: float = TIMEOUT) -> SarvamConnection:
    return SarvamConnection(key, fake.url, timeout)


def tts_chain(sarvam: SarvamConnection, model: str = "bulbul:v3") -> TextToSpeech:
    return FallbackTextToSpeech(
        [Choice("sarvam", SarvamTextToSpeech(sarvam, model)), Choice(OFFLINE, OfflineTextToSpeech(EspeakSynthesizer()))]
    )


def stt_chain(sarvam: SarvamConnection) -> SpeechToText:
    return FallbackSpeechToText(
        [
            Choice("sarvam", SarvamSpeechToText(sarvam, "saaras:v3")),
            Choice(OFFLINE, OfflineSpeechToText(PocketsphinxRecognizer())),
        ]
    )


def spoken_goodbye() -> Audio:
    return EspeakSynthesizer().synthesize("goodbye", "en-US", "")


@pytest.mark.parametrize("rate", [8000, 16000])
def test_hindi_is_spoken_by_sarvam_at_the_rate_the_channel_plays(fake: FakeSarvamServer, rate: int) -> None:
    spoken = tts_chain(connection(fake)).synthesize(HINDI, Speaking(language="hi-IN", speaker="priya", rate=rate))

    assert spoken.engine == "sarvam"
    assert spoken.audio.rate == rate
    assert spoken.audio.duration_seconds == pytest.approx(len(HINDI) * SECONDS_PER_CHARACTER, abs=0.01)
    [sent] = fake.requests
    assert sent.path == "/text-to-speech"
    assert sent.headers["api-subscription-key"] == KEY
    assert {k: sent.fields[k] for k in ("text", "language_code", "speaker", "speech_sample_rate", "model")} == {
        "text": HINDI,
        "language_code": "hi-IN",
        "speaker": "priya",
        "speech_sample_rate": rate,
        "model": "bulbul:v3",
    }


def test_english_is_sarvams_en_in_and_no_speaker_means_the_models_default(fake: FakeSarvamServer) -> None:
    spoken = tts_chain(connection(fake)).synthesize("Hello.", Speaking(language="en-US", rate=24000))
    assert (spoken.engine, spoken.audio.rate) == ("sarvam", 24000)
    assert fake.requests[0].fields["language_code"] == "en-IN", "any English is Sarvam's en-IN"
    assert "speaker" not in fake.requests[0].fields, "no speaker: the model's default, not null"


def test_audio_answered_at_another_rate_is_resampled_to_the_channels(fake: FakeSarvamServer) -> None:
    fake.answer_rate = 22050
    spoken = tts_chain(connection(fake)).synthesize(HINDI, Speaking(language="hi-IN", rate=8000))
    assert (spoken.engine, spoken.audio.rate) == ("sarvam", 8000)
    assert spoken.audio.duration_seconds == pytest.approx(len(HINDI) * SECONDS_PER_CHARACTER, abs=0.01)


def test_long_text_is_split_at_sentence_ends_into_requests_within_the_models_limit(fake: FakeSarvamServer) -> None:
    sentence = "यह एक लंबा वाक्य है जिसे बोला जाना है, ताकि पाठ सीमा से आगे निकल जाए।"
    text = " ".join([sentence] * 50) + " Is that clear? Yes."  # ~3,600 characters: two v2 requests at least
    spoken = tts_chain(connection(fake), model="bulbul:v2").synthesize(text, Speaking(language="hi-IN", rate=16000))

    sent = [r.fields["text"] for r in fake.requests]
    assert len(sent) >= 3
    assert all(len(t) <= 1500 for t in sent)
    assert all(t.endswith(("।", "?", ".")) for t in sent), "every request ends at a sentence end"
    assert " ".join(sent) == text
    assert spoken.engine == "sarvam"
    assert spoken.audio.duration_seconds == pytest.approx(sum(len(t) for t in sent) * SECONDS_PER_CHARACTER, abs=0.01)


def test_speech_to_text_sends_the_agents_language_and_model(fake: FakeSarvamServer) -> None:
    heard = stt_chain(connection(fake)).transcribe(spoken_goodbye(), Hearing(language="hi-IN"))

    assert (heard.text, heard.engine, heard.language) == (fake.transcript, "sarvam", "hi-IN")
    [sent] = fake.requests
    assert sent.path == "/speech-to-text"
    assert sent.fields["model"] == "saaras:v3"
    assert sent.fields["language_code"] == "hi-IN"
    assert sent.file is not None
    assert sent.file.startswith(b"RIFF")


def test_detection_asks_for_unknown_and_returns_the_detected_language(fake: FakeSarvamServer) -> None:
    fake.detected_language = "ta-IN"
    try:
        heard = stt_chain(connection(fake)).transcribe(
            spoken_goodbye(), Hearing(language="hi-IN", detect_language=True)
        )
    finally:
        fake.detected_language = "hi-IN"

    assert fake.requests[0].fields["language_code"] == "unknown"
    assert (heard.engine, heard.language) == ("sarvam", "ta-IN")


def test_rate_limited_with_a_long_retry_after_falls_back_to_espeak_at_once(fake: FakeSarvamServer) -> None:
    fake.always = RateLimited(retry_after_seconds=30)
    started = time.perf_counter()
    spoken = tts_chain(connection(fake)).synthesize(HINDI, Speaking(language="hi-IN", rate=16000))

    assert spoken.engine == "espeak"
    assert spoken.audio.rate == 16000
    assert spoken.audio.duration_seconds > 1
    assert len(fake.requests) == 1, "a Retry-After longer than a caller waits is not waited for"
    assert time.perf_counter() - started < 5


def test_a_short_retry_after_is_honoured_once_and_sarvam_answers(fake: FakeSarvamServer) -> None:
    fake.script(RateLimited(retry_after_seconds=0))
    spoken = tts_chain(connection(fake)).synthesize(HINDI, Speaking(language="hi-IN", rate=16000))
    assert spoken.engine == "sarvam"
    assert len(fake.requests) == 2


def test_a_server_error_falls_back_to_the_offline_engines(fake: FakeSarvamServer) -> None:
    fake.always = ServerError()
    spoken = tts_chain(connection(fake)).synthesize(HINDI, Speaking(language="hi-IN", rate=8000))
    heard = stt_chain(connection(fake)).transcribe(spoken_goodbye(), Hearing(language="en-US", phrases=("goodbye",)))

    assert (spoken.engine, spoken.audio.rate) == ("espeak", 8000)
    assert (heard.engine, heard.text, heard.language) == ("pocketsphinx", "goodbye", "en-US")
    assert fake.paths() == ["/text-to-speech"] * 2 + ["/speech-to-text"] * 2, "one short retry each"


def test_retried_speech_to_text_still_sends_its_form_fields(fake: FakeSarvamServer) -> None:
    """The SDK's own retry drops the multipart fields; ours must not."""
    fake.script(ServerError())
    heard = stt_chain(connection(fake)).transcribe(spoken_goodbye(), Hearing(language="hi-IN"))
    assert heard.engine == "sarvam"
    assert [r.fields.get("language_code") for r in fake.requests] == ["hi-IN", "hi-IN"]


def test_a_timeout_falls_back_within_the_timeout(fake: FakeSarvamServer) -> None:
    fake.always = Slow(seconds=5)
    started = time.perf_counter()
    spoken = tts_chain(connection(fake, timeout=0.5)).synthesize(HINDI, Speaking(language="hi-IN", rate=16000))
    assert spoken.engine == "espeak"
    assert time.perf_counter() - started < 3


def test_an_unreachable_sarvam_falls_back() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sarvam = SarvamConnection(KEY, f"http://127.0.0.1:{port}", TIMEOUT)
    assert tts_chain(sarvam).synthesize(HINDI, Speaking(language="hi-IN")).engine == "espeak"


def test_a_wrong_key_is_raised_not_hidden_and_never_logged(
    fake: FakeSarvamServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk-wrong-key-also-never-logged"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(SpeechRejected, match="403") as refused:
        tts_chain(connection(fake, key=wrong)).synthesize(HINDI, Speaking(language="hi-IN"))
    with pytest.raises(SpeechRejected, match="invalid_api_key_error"):
        stt_chain(connection(fake, key=wrong)).transcribe(spoken_goodbye(), Hearing(language="hi-IN"))

    assert fake.paths() == ["/text-to-speech", "/speech-to-text"], "no retry, no fallback"
    assert "SARVAM_API_KEY" in str(refused.value)
    assert any(r.levelno == logging.ERROR and "403" in r.getMessage() for r in caplog.records)
    everything = caplog.text + str(refused.value) + repr(refused.value.__cause__)
    assert wrong not in everything
    assert KEY not in everything


def test_the_key_is_in_no_log_of_a_failing_and_falling_back_run(
    fake: FakeSarvamServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.script(RateLimited(0), RateLimited(30), ServerError(), ServerError())
    tts_chain(connection(fake)).synthesize(HINDI, Speaking(language="hi-IN"))
    tts_chain(connection(fake)).synthesize(HINDI, Speaking(language="hi-IN"))
    assert caplog.records, "the fallbacks were logged"
    assert KEY not in caplog.text
    assert KEY not in repr(connection(fake))


def test_a_language_sarvam_lacks_is_spoken_offline_without_asking_it(fake: FakeSarvamServer) -> None:
    spoken = tts_chain(connection(fake)).synthesize("Bonjour.", Speaking(language="fr-FR"))
    assert spoken.engine == "espeak"
    assert fake.requests == []


def test_an_offline_agent_never_reaches_sarvam_and_a_hindi_agent_gets_a_hindi_voice(fake: FakeSarvamServer) -> None:
    chain = tts_chain(connection(fake))
    hindi = chain.synthesize("12345", Speaking(language="hi-IN", provider="offline"))
    english = chain.synthesize("12345", Speaking(language="en-US", provider="offline"))
    assert (hindi.engine, english.engine) == ("espeak", "espeak")
    assert fake.requests == []
    assert abs(hindi.audio.duration_seconds - english.audio.duration_seconds) > 0.3, "numbers read in Hindi"


def test_an_agent_that_requires_sarvam_where_none_is_configured_is_told_so() -> None:
    offline_only = FallbackTextToSpeech([Choice(OFFLINE, OfflineTextToSpeech(EspeakSynthesizer()))])
    with pytest.raises(SpeechNotConfigured, match="sarvam"):
        offline_only.synthesize("Hello.", Speaking(language="hi-IN", provider="sarvam"))


def test_audio_sarvam_cannot_read_is_not_a_wav_we_send(fake: FakeSarvamServer) -> None:
    """The fake refuses anything but a WAV: what we upload is the caller's audio as 16-bit PCM WAV."""
    audio = Audio(np.zeros(1600, dtype=np.int16), 8000)
    stt_chain(connection(fake)).transcribe(audio, Hearing(language="hi-IN"))
    assert fake.requests[0].file == encode_wav(audio)
