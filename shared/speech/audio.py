"""Mono 16-bit audio and the WAV/resampling edges every speech adapter shares.

Callers upload WAV files of any rate and channel layout; the speech engines want one
channel at a fixed rate. Normalising here keeps that conversion (and its error
handling) in one place instead of in each adapter.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

from shared.errors import InvalidAudio

_PCM16_WIDTH = 2
_PCM8_WIDTH = 1
_PCM8_OFFSET = 128
_PCM8_TO_16 = 256

MIN_RATE = 8000
MAX_RATE = 48000
"""Telephone to studio rates. Work downstream is per second of audio, so a header claiming 8 Hz
made 1 KB of samples into 62 s of audio (87 s to recognise), and one claiming 1 Hz into 8 minutes."""
MAX_CHANNELS = 2
"""Mono or stereo: what microphones and phones record. More channels would be downmixed into one
voice anyway, so a surround or multitrack file is a client's mistake, not speech to average."""
DEFAULT_MAX_SECONDS = 30.0
"""The bound when none is given; the app passes its AUDIO_MAX_SECONDS setting."""


@dataclass(frozen=True, eq=False)
class Audio:
    """Mono signed 16-bit samples at `rate` Hz.

    `eq=False` because element-wise numpy comparison has no single truth value;
    compare `samples` with `numpy.array_equal` instead.
    """

    samples: npt.NDArray[np.int16]
    rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 1 or self.samples.dtype != np.int16:
            raise ValueError("Audio samples must be a 1-D int16 array")
        if self.rate <= 0:
            raise ValueError(f"Audio rate must be positive, got {self.rate}")
        view = self.samples.view()
        view.flags.writeable = False
        object.__setattr__(self, "samples", view)

    @property
    def duration_seconds(self) -> float:
        return len(self.samples) / self.rate


def decode_wav(data: bytes, max_seconds: float = DEFAULT_MAX_SECONDS) -> Audio:
    """Read an uncompressed 8- or 16-bit PCM WAV, downmixing to mono.

    Rate, channels, width and duration are bounded before any sample is converted, so no header
    can turn a small upload into minutes of work. Anything unusable is the caller's mistake, so it
    becomes `InvalidAudio` (a 422) saying the limit, never a 500.
    """
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            _check_format(channels, width, rate)
            raw = reader.readframes(reader.getnframes())
    # RuntimeError: what `wave` raises when a chunk size points outside the file.
    except (wave.Error, EOFError, struct.error, RuntimeError) as error:
        detail = str(error) or "the file is truncated"
        raise InvalidAudio(f"Not a readable PCM WAV file: {detail}") from error
    frame_bytes = channels * width
    frames = len(raw) // frame_bytes
    if frames == 0:
        raise InvalidAudio("WAV file contains no audio")
    if frames > max_seconds * rate:
        raise InvalidAudio(f"WAV audio is {frames / rate:.1f} s long; the limit is {max_seconds:g} s per turn.")
    raw = raw[: frames * frame_bytes]
    if width == _PCM8_WIDTH:
        unsigned = np.frombuffer(raw, dtype=np.uint8).astype(np.int32)
        wide = (unsigned - _PCM8_OFFSET) * _PCM8_TO_16
    else:
        wide = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    mono = wide.reshape(frames, channels).mean(axis=1)
    return Audio(np.round(mono).astype(np.int16), rate)


def _check_format(channels: int, width: int, rate: int) -> None:
    if width not in (_PCM8_WIDTH, _PCM16_WIDTH):
        raise InvalidAudio(f"Unsupported WAV sample width: {8 * width} bits; send 8- or 16-bit PCM.")
    if not 1 <= channels <= MAX_CHANNELS:
        raise InvalidAudio(f"WAV has {channels} channels; send mono or stereo.")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidAudio(f"WAV sample rate is {rate} Hz; send {MIN_RATE} to {MAX_RATE} Hz.")


def encode_wav(audio: Audio) -> bytes:
    """Write 16-bit PCM mono: the one format every player and engine accepts."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(_PCM16_WIDTH)
        writer.setframerate(audio.rate)
        writer.writeframes(audio.samples.astype("<i2").tobytes())
    return buffer.getvalue()


def resample(audio: Audio, rate: int) -> Audio:
    """Convert to `rate` Hz with soxr's band-limited resampler (no aliasing)."""
    if rate <= 0:
        raise ValueError(f"Target rate must be positive, got {rate}")
    if rate == audio.rate:
        return audio
    if len(audio.samples) == 0:
        return Audio(audio.samples, rate)
    converted = soxr.resample(audio.samples, audio.rate, rate)
    return Audio(np.asarray(converted, dtype=np.int16), rate)
