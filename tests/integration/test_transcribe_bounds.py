"""Hearing a turn bounds its own work: audio stored before the upload bounds cannot freeze a host.

Real Postgres and Azurite; the audio is put straight into the store, as it was before the bounds
existed, and the activity runs as a restarted host would resume it.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from shared import activities
from shared.config import Settings
from shared.models import Transcript
from shared.services import Services
from shared.speech.audio import encode_wav
from shared.speech.espeak import EspeakSynthesizer
from shared.storage.blobs import caller_audio_name

STORED_LIMIT_SECONDS = 2.0


@pytest.fixture(scope="module")
def services(new_database: Callable[[], str], blob_connection_string: str) -> Iterator[Services]:
    settings = Settings(
        database_url=new_database(),
        blob_connection_string=blob_connection_string,
        audio_container=f"audio{uuid.uuid4().hex[:8]}",
        audio_max_seconds=STORED_LIMIT_SECONDS,
    )
    built = Services(settings)
    yield built
    built.pool.close()


def claiming(rate: int) -> bytes:
    """What the issue sent: 1 KB of samples under a header that claims `rate` Hz."""
    data = np.random.default_rng(0).integers(-30000, 30001, 500).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def heard(services: Services, data: bytes) -> Transcript:
    """What `answer_turn` hears of this recording, stored as a restarted host would find it."""
    name = caller_audio_name(str(uuid.uuid4()), f"key:{uuid.uuid4().hex}")
    services.audio.put(name, data)
    return activities.hear(services, activities.agent_profile(services, "demo"), "en-US", name)


def spoken(text: str, pad_seconds: float = 0.0) -> bytes:
    speech = EspeakSynthesizer().synthesize(text, "en-US", "")
    padding = np.zeros(int(pad_seconds * speech.rate), dtype=np.int16)
    return encode_wav(type(speech)(np.concatenate([speech.samples, padding]), speech.rate))


def test_finding_3_stored_audio_within_the_bounds_is_transcribed(services: Services) -> None:
    assert heard(services, spoken("goodbye")).text == "goodbye"


@pytest.mark.parametrize("rate", [8, 1])
def test_finding_3_stored_1_kb_wav_claiming_8_or_1_hz_is_heard_as_nothing(services: Services, rate: int) -> None:
    assert heard(services, claiming(rate)).text == ""


def test_finding_3_stored_audio_longer_than_the_setting_is_heard_as_nothing(services: Services) -> None:
    """Speech the recogniser knows, made longer than the limit with silence: refused, not heard."""
    assert heard(services, spoken("goodbye", STORED_LIMIT_SECONDS)).text == ""
