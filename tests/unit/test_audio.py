"""WAV decoding/encoding and resampling: the edges every uploaded recording goes through."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from shared.errors import InvalidAudio
from shared.speech.audio import Audio, decode_wav, encode_wav, resample

PCM = 1
IEEE_FLOAT = 3
MU_LAW = 7
EXTENSIBLE = 0xFFFE


def wav_bytes(
    data: bytes,
    *,
    channels: int = 1,
    bits: int = 16,
    rate: int = 16000,
    format_tag: int = PCM,
) -> bytes:
    """A canonical 44-byte-header WAV, built by hand so malformed variants are easy."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", format_tag, channels, rate, rate * block_align, block_align, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def sine(frequency: float, rate: int, seconds: float) -> Audio:
    t = np.arange(int(rate * seconds)) / rate
    return Audio(np.round(10000 * np.sin(2 * np.pi * frequency * t)).astype(np.int16), rate)


def dominant_frequency(audio: Audio) -> float:
    spectrum = np.abs(np.fft.rfft(audio.samples.astype(np.float64)))
    return float(np.fft.rfftfreq(len(audio.samples), 1 / audio.rate)[spectrum.argmax()])


def test_round_trip_keeps_samples_and_rate() -> None:
    samples = np.random.default_rng(1).integers(-32768, 32768, 4000).astype(np.int16)
    decoded = decode_wav(encode_wav(Audio(samples, 22050)))
    assert decoded.rate == 22050
    assert np.array_equal(decoded.samples, samples)


def test_encode_writes_16_bit_mono_pcm() -> None:
    encoded = encode_wav(Audio(np.array([1, -2, 3], dtype=np.int16), 8000))
    assert encoded == wav_bytes(struct.pack("<3h", 1, -2, 3), rate=8000)


def test_stereo_is_downmixed_to_the_mean_of_the_channels() -> None:
    frames = struct.pack("<6h", 1000, 3000, -4000, -2000, 32767, 32767)
    audio = decode_wav(wav_bytes(frames, channels=2))
    assert audio.samples.tolist() == [2000, -3000, 32767]


def test_8_bit_unsigned_pcm_is_widened_to_16_bit() -> None:
    audio = decode_wav(wav_bytes(bytes([0, 128, 255]), bits=8, rate=8000))
    assert audio.samples.tolist() == [-32768, 0, 32512]
    assert audio.rate == 8000


def test_a_short_data_chunk_keeps_its_whole_frames() -> None:
    header_says_more = wav_bytes(struct.pack("<3h", 5, 6, 7))
    truncated = header_says_more[:-1]
    assert decode_wav(truncated).samples.tolist() == [5, 6]


def test_duration_is_samples_over_rate() -> None:
    assert Audio(np.zeros(12000, dtype=np.int16), 8000).duration_seconds == 1.5


def test_audio_rejects_what_is_not_mono_int16() -> None:
    with pytest.raises(ValueError, match="1-D int16"):
        Audio(np.zeros((2, 10), dtype=np.int16), 16000)
    with pytest.raises(ValueError, match="1-D int16"):
        Audio(np.zeros(10, dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="rate must be positive"):
        Audio(np.zeros(10, dtype=np.int16), 0)


def test_audio_samples_are_read_only() -> None:
    audio = Audio(np.zeros(10, dtype=np.int16), 16000)
    with pytest.raises(ValueError, match="read-only"):
        audio.samples[0] = 1


@pytest.mark.parametrize(("source", "target"), [(8000, 16000), (22050, 16000), (16000, 8000)])
def test_resample_changes_rate_and_keeps_duration_and_pitch(source: int, target: int) -> None:
    original = sine(440, source, 1.0)
    converted = resample(original, target)
    assert converted.rate == target
    assert converted.duration_seconds == pytest.approx(original.duration_seconds, rel=0.01)
    assert dominant_frequency(converted) == pytest.approx(440, abs=2)


def test_resample_to_the_same_rate_is_a_no_op() -> None:
    audio = sine(440, 16000, 0.1)
    assert resample(audio, 16000) is audio


def test_resample_rejects_a_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        resample(sine(440, 16000, 0.1), 0)


VALID = wav_bytes(struct.pack("<4h", 1, 2, 3, 4))

INVALID = {
    "empty": b"",
    "random bytes": np.random.default_rng(7).integers(0, 256, 2000, dtype=np.uint8).tobytes(),
    "text": b"this is not audio at all, just a sentence",
    "truncated header": VALID[:30],
    "riff without wave": b"RIFF" + struct.pack("<I", 4) + b"AVI ",
    "zero frames": wav_bytes(b""),
    "less than one frame": wav_bytes(b"\x01\x02\x03", channels=2),
    "24-bit": wav_bytes(b"\x00" * 12, bits=24),
    "32-bit": wav_bytes(b"\x00" * 16, bits=32),
    "float": wav_bytes(struct.pack("<2f", 0.1, -0.1), bits=32, format_tag=IEEE_FLOAT),
    "mu-law": wav_bytes(b"\x7f\xff", bits=8, format_tag=MU_LAW),
    "extensible": wav_bytes(b"\x00" * 8, format_tag=EXTENSIBLE),
    "zero rate": wav_bytes(b"\x00" * 8, rate=0),
}


@pytest.mark.parametrize("data", INVALID.values(), ids=INVALID.keys())
def test_anything_but_a_non_empty_pcm_wav_is_invalid_audio(data: bytes) -> None:
    with pytest.raises(InvalidAudio):
        decode_wav(data)


def test_every_prefix_of_a_wav_decodes_or_is_invalid_audio() -> None:
    """Whatever a cut-off upload looks like, it must never become a 500."""
    for end in range(len(VALID)):
        try:
            audio = decode_wav(VALID[:end])
        except InvalidAudio:
            continue
        assert len(audio.samples) > 0


def test_corrupted_headers_decode_or_are_invalid_audio() -> None:
    """Random damage to the header (sizes pointing past the end, odd formats) is never a 500."""
    rng = np.random.default_rng(3)
    for _ in range(3000):
        damaged = bytearray(VALID)
        for position in rng.integers(0, 44, rng.integers(1, 4)):
            damaged[position] = rng.integers(0, 256)
        try:
            audio = decode_wav(bytes(damaged))
        except InvalidAudio:
            continue
        assert len(audio.samples) > 0


def one_kilobyte_claiming(rate: int) -> bytes:
    return wav_bytes(np.random.default_rng(5).integers(-30000, 30000, 500).astype("<i2").tobytes(), rate=rate)


@pytest.mark.parametrize("rate", [1, 8, 4000, 7999, 48001, 192000])
def test_finding_3_wav_claiming_8_hz_or_any_rate_outside_8_to_48_khz_is_refused_before_any_work(rate: int) -> None:
    with pytest.raises(InvalidAudio, match=f"sample rate is {rate} Hz; send 8000 to 48000 Hz"):
        decode_wav(one_kilobyte_claiming(rate))


@pytest.mark.parametrize("rate", [8000, 11025, 44100, 48000])
def test_finding_3_rates_from_8_to_48_khz_are_heard(rate: int) -> None:
    assert decode_wav(one_kilobyte_claiming(rate)).rate == rate


@pytest.mark.parametrize("channels", [3, 6, 255])
def test_finding_3_more_than_two_channels_are_refused(channels: int) -> None:
    with pytest.raises(InvalidAudio, match=f"{channels} channels; send mono or stereo"):
        decode_wav(wav_bytes(b"\x00\x00" * channels * 4, channels=channels))


def test_finding_3_audio_longer_than_the_limit_is_refused_saying_the_limit() -> None:
    thirty_seconds = wav_bytes(b"\x80" * 8000 * 30, bits=8, rate=8000)
    assert decode_wav(thirty_seconds, max_seconds=30).duration_seconds == 30
    with pytest.raises(InvalidAudio, match=r"30\.0 s long; the limit is 29 s"):
        decode_wav(thirty_seconds, max_seconds=29)
    a_frame_more = wav_bytes(b"\x80" * (8000 * 30 + 1), bits=8, rate=8000)
    with pytest.raises(InvalidAudio, match="the limit is 30 s"):
        decode_wav(a_frame_more)


def test_finding_3_duration_counts_the_frames_the_file_holds_not_only_what_the_header_claims() -> None:
    """A streaming writer's header may claim gigabytes; what is decoded (and bounded) is the data present."""
    one_second = wav_bytes(b"\x00\x00" * 16000)
    claims_a_day = one_second[:40] + struct.pack("<I", 0xFFFFFFF0) + one_second[44:]
    assert decode_wav(claims_a_day, max_seconds=2).duration_seconds == 1
    with pytest.raises(InvalidAudio, match=r"the limit is 0\.5 s"):
        decode_wav(claims_a_day, max_seconds=0.5)
