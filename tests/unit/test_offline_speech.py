"""The offline speech adapters against each other: eSpeak speaks, pocketsphinx listens."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from shared.speech.audio import Audio, resample
from shared.speech.espeak import EspeakSynthesizer, voices_for
from shared.speech.pocketsphinx import PocketsphinxRecognizer
from shared.speech.ports import Recognizer, Synthesizer

PHRASES = [
    "what are your opening hours",
    "i want to talk to a human",
    "goodbye",
    "how much does delivery cost",
    "hello there",
]
NOT_EXPECTED = "where is my order"


@pytest.fixture(scope="module")
def tts() -> Synthesizer:
    return EspeakSynthesizer()


@pytest.fixture(scope="module")
def stt() -> Recognizer:
    return PocketsphinxRecognizer()


@pytest.fixture(scope="module")
def spoken(tts: Synthesizer) -> dict[str, Audio]:
    return {text: tts.synthesize(text, "en-US", "") for text in [*PHRASES, NOT_EXPECTED]}


def test_synthesis_is_16_khz_speech_of_a_plausible_length(tts: Synthesizer) -> None:
    short = tts.synthesize("Hello there, how can I help you?", "en-US", "en-us")
    longer = tts.synthesize(
        "Hello there, how can I help you? We are open from nine to five every day.",
        "en-US",
        "en-us",
    )
    assert short.rate == longer.rate == 16000
    assert 0.5 <= short.duration_seconds <= 6
    assert longer.duration_seconds > short.duration_seconds + 1
    assert np.abs(short.samples).max() > 5000


@pytest.mark.parametrize("text", ["", "   \n"])
def test_synthesising_empty_text_is_a_caller_bug(tts: Synthesizer, text: str) -> None:
    with pytest.raises(ValueError, match="empty text"):
        tts.synthesize(text, "en-US", "")


@pytest.mark.parametrize("language", ["hi-IN", "ta-IN", "bn-IN", "xx-YY"])
def test_other_languages_still_produce_speech(tts: Synthesizer, language: str) -> None:
    audio = tts.synthesize("नमस्ते, आप कैसे हैं? Hello.", language, "")
    assert audio.rate == 16000
    assert audio.duration_seconds > 0.5
    assert np.abs(audio.samples).max() > 5000


def test_voices_follow_the_language_and_fall_back_to_us_english() -> None:
    assert voices_for("en-GB", "") == ["en", "en-us"]
    assert voices_for("hi-IN", "") == ["hi", "en-us"]
    assert voices_for("en-US", "en-US-JennyNeural") == ["en-US-JennyNeural", "en-us"]
    assert voices_for("de-DE", "") == ["de", "en-us"]


def test_a_voice_espeak_knows_wins_over_the_language(tts: Synthesizer) -> None:
    """Numbers are read in the voice's language, which shows in the duration
    (eSpeak adds random jitter, so waveforms are never bit-identical)."""
    by_voice = tts.synthesize("12345", "hi-IN", "en-us").duration_seconds
    in_english = tts.synthesize("12345", "en-US", "").duration_seconds
    in_hindi = tts.synthesize("12345", "hi-IN", "").duration_seconds
    assert by_voice == pytest.approx(in_english, abs=0.05)
    assert abs(in_hindi - in_english) > 0.3


@pytest.mark.parametrize("text", PHRASES)
def test_expected_phrases_are_transcribed_exactly(stt: Recognizer, spoken: dict[str, Audio], text: str) -> None:
    assert stt.transcribe(spoken[text], "en-US", PHRASES) == text


@pytest.mark.parametrize("text", PHRASES)
def test_telephone_quality_audio_is_transcribed_exactly(stt: Recognizer, spoken: dict[str, Audio], text: str) -> None:
    telephone = resample(spoken[text], 8000)
    assert stt.transcribe(telephone, "en-US", PHRASES) == text


def test_phrases_are_normalised_before_they_become_a_grammar(stt: Recognizer, spoken: dict[str, Audio]) -> None:
    phrases = ["  Goodbye!", "Hello, there.", "xqzzyv", "", "नमस्ते"]
    assert stt.transcribe(spoken["hello there"], "en-US", phrases) == "hello there"


def test_speech_outside_the_phrases_falls_back_to_free_form(stt: Recognizer, spoken: dict[str, Audio]) -> None:
    heard = stt.transcribe(spoken[NOT_EXPECTED], "en-US", PHRASES)
    assert heard not in PHRASES
    assert "order" in heard.split()


def test_a_partial_grammar_match_is_not_a_transcript(stt: Recognizer, tts: Synthesizer) -> None:
    """The grammar search ends on "what" here: a fragment, not one of the phrases."""
    heard = stt.transcribe(tts.synthesize("thank you very much", "en-US", ""), "en-US", PHRASES)
    assert heard not in PHRASES
    assert "you" in heard.split()


def test_free_form_recognition_without_phrases(stt: Recognizer, spoken: dict[str, Audio]) -> None:
    assert stt.transcribe(spoken["what are your opening hours"], "en-US", []).startswith("what are your")


def test_silence_is_heard_as_nothing(stt: Recognizer) -> None:
    silence = Audio(np.zeros(16000, dtype=np.int16), 16000)
    assert stt.transcribe(silence, "en-US", PHRASES) == ""
    assert stt.transcribe(Audio(np.zeros(0, dtype=np.int16), 8000), "en-US", PHRASES) == ""


@pytest.mark.parametrize("text", ["hi", "bye", "goodbye"])
def test_long_silence_around_short_words_does_not_matter(stt: Recognizer, tts: Synthesizer, text: str) -> None:
    gap = np.zeros(32000, dtype=np.int16)
    speech = tts.synthesize(text, "en-US", "").samples
    padded = Audio(np.concatenate([gap, speech, gap]), 16000)
    phrases = [*PHRASES, "hi", "bye", "how are you", "who are you"]
    assert stt.transcribe(padded, "en-US", phrases) == text


def test_quiet_telephone_audio_is_transcribed_exactly(stt: Recognizer, spoken: dict[str, Audio]) -> None:
    for text in PHRASES:
        quiet = Audio(spoken[text].samples // 20, 16000)
        assert stt.transcribe(resample(quiet, 8000), "en-US", PHRASES) == text


def test_a_transcript_does_not_depend_on_earlier_ones(tts: Synthesizer, spoken: dict[str, Audio]) -> None:
    stt = PocketsphinxRecognizer()
    audio = resample(tts.synthesize("how much is it", "en-US", ""), 8000)
    first = stt.transcribe(audio, "en-US", [])
    for text in PHRASES[:3]:
        stt.transcribe(spoken[text], "en-US", [])
        assert stt.transcribe(audio, "en-US", []) == first


def test_evicted_grammars_are_rebuilt(spoken: dict[str, Audio]) -> None:
    stt = PocketsphinxRecognizer(max_grammars=1)
    for _ in range(2):
        for phrases in (PHRASES[:3], PHRASES[2:]):
            assert stt.transcribe(spoken["goodbye"], "en-US", phrases) == "goodbye"


def test_concurrent_callers_all_get_their_own_transcript(tts: Synthesizer) -> None:
    stt = PocketsphinxRecognizer()
    phrase_sets = [PHRASES, PHRASES[1:], PHRASES[:-1], PHRASES[::-1]]
    jobs = [(text, phrase_sets[index % 4]) for index, text in enumerate(PHRASES[1:4] * 4)]

    def round_trip(job: tuple[str, list[str]]) -> str:
        text, phrases = job
        return stt.transcribe(tts.synthesize(text, "en-US", ""), "en-US", phrases)

    with ThreadPoolExecutor(max_workers=4) as pool:
        heard = list(pool.map(round_trip, jobs))
    assert heard == [text for text, _ in jobs]


def test_finding_3_other_threads_keep_running_while_the_slowest_audio_is_recognised(stt: Recognizer) -> None:
    """Noise is the slowest audio to recognise, and the recogniser holds the GIL while it searches.
    Run in this process, another thread (the worker's event loop, in the app) got 11 turns in all
    while 10 s of noise was heard; fed in 50 ms chunks, about 200. It runs in a child process now."""
    noise = Audio(np.random.default_rng(2).integers(-30000, 30001, 16000 * 10).astype(np.int16), 16000)
    turns = 0
    done = threading.Event()

    def other_thread() -> None:
        nonlocal turns
        while not done.is_set():
            time.sleep(0.002)
            turns += 1

    other = threading.Thread(target=other_thread)
    other.start()
    try:
        stt.transcribe(noise, "en-US", PHRASES)
    finally:
        done.set()
        other.join()
    assert turns > 300


def test_finding_3_a_recogniser_that_dies_fails_one_call_and_the_next_starts_afresh(spoken: dict[str, Audio]) -> None:
    """Out of memory in the recogniser (the issue saw `std::bad_alloc`) ends its child process, not the worker."""
    stt = PocketsphinxRecognizer()
    before = set(multiprocessing.active_children())
    assert stt.transcribe(spoken["goodbye"], "en-US", PHRASES) == "goodbye"
    (child,) = set(multiprocessing.active_children()) - before
    os.kill(child.pid or 0, signal.SIGKILL)
    child.join()
    with pytest.raises(BrokenProcessPool):
        stt.transcribe(spoken["goodbye"], "en-US", PHRASES)
    assert stt.transcribe(spoken["hello there"], "en-US", PHRASES) == "hello there"
