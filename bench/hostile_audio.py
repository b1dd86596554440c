"""Hostile audio: how long the worst accepted recordings take to hear, and whether the host stays responsive.

For each recording the upload bounds accept (30 s of noise or a tone at the rates and widths that
fit MAX_REQUEST_BYTES), it prints:

- in process: the recogniser's time and the longest the GIL kept a 5 ms ticker thread waiting
  (what every other thread of the worker, its event loop included, waits at worst);
- through a devhost: the turn's STT time and the latency of `GET /api/health`, polled every
  100 ms while that turn is processed.

It also sends the 1 KB WAVs whose headers claim 8 Hz and 1 Hz (which froze the host before the
bounds) and prints what they get. Figures only: nothing here passes or fails.

    python bench/hostile_audio.py                 # all recordings, in process and through a devhost
    python bench/hostile_audio.py --only white-16k-16bit --skip-process
"""

from __future__ import annotations

import argparse
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devhost.process import DevHost
from shared.speech.audio import DEFAULT_MAX_SECONDS, Audio, decode_wav
from shared.speech.pocketsphinx import PocketsphinxRecognizer

PHRASES = ["hello there", "what are your opening hours", "how much does delivery cost", "goodbye"]
TICK_SECONDS = 0.005
HEALTH_EVERY_SECONDS = 0.1


def wav(samples: npt.NDArray[np.int16], rate: int, bits: int, channels: int = 1) -> bytes:
    """A PCM WAV of `samples` repeated on every channel, at 8 or 16 bits."""
    frames = np.repeat(samples, channels)
    data = (frames // 256 + 128).astype(np.uint8).tobytes() if bits == 8 else frames.astype("<i2").tobytes()
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def recordings(seconds: float) -> Iterator[tuple[str, bytes]]:
    """The slowest kinds of accepted audio: broadband noise, brown noise, a steady tone."""
    rng = np.random.default_rng(7)
    for rate, bits, channels in ((16000, 16, 1), (48000, 8, 1), (8000, 16, 1), (16000, 16, 2), (32000, 16, 1)):
        count = int(rate * seconds)
        white = rng.integers(-30000, 30001, count).astype(np.int16)
        walk = np.cumsum(rng.normal(0.0, 1.0, count))
        brown = (28000 * (walk - walk.mean()) / np.abs(walk - walk.mean()).max()).astype(np.int16)
        tone = np.round(10000 * np.sin(2 * np.pi * 440 * np.arange(count) / rate)).astype(np.int16)
        layout = f"{rate // 1000}k-{bits}bit" + ("-stereo" if channels == 2 else "")
        for kind, samples in (("white", white), ("brown", brown), ("tone", tone)):
            yield f"{kind}-{layout}", wav(samples, rate, bits, channels)


def claiming(rate: int) -> bytes:
    """1 KB of samples under a header that claims `rate` Hz."""
    samples = np.random.default_rng(0).integers(-30000, 30001, 500).astype(np.int16)
    return wav(samples, rate, 16)


def in_process(recognizer: PocketsphinxRecognizer, audio: Audio) -> tuple[float, float]:
    """Seconds to transcribe, and the longest a ticker thread waited meanwhile."""
    stalls: list[float] = []
    done = threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            time.sleep(TICK_SECONDS)
            now = time.perf_counter()
            stalls.append(now - last - TICK_SECONDS)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    started = time.perf_counter()
    recognizer.transcribe(audio, "en-US", PHRASES)
    elapsed = time.perf_counter() - started
    done.set()
    ticker.join()
    return elapsed, max(stalls, default=0.0)


def through_devhost(host: DevHost, data: bytes) -> tuple[int, float | None, list[float]]:
    """Send one spoken turn and poll health until it is answered: status, STT ms, health latencies."""
    conversation_id = host.post("/api/conversations", json={}).json()["conversation_id"]
    answer: list[requests.Response] = []
    turn = threading.Thread(
        target=lambda: answer.append(
            host.post(
                f"/api/conversations/{conversation_id}/turns",
                data=data,
                headers={"Content-Type": "audio/wav"},
                timeout=600,
            )
        )
    )
    turn.start()
    latencies: list[float] = []
    while turn.is_alive():
        started = time.perf_counter()
        host.get("/api/health", timeout=60).raise_for_status()
        latencies.append(time.perf_counter() - started)
        time.sleep(HEALTH_EVERY_SECONDS)
    turn.join()
    response = answer[0]
    stt = response.json()["timings_ms"]["stt"] if response.status_code == 200 else None
    host.post(f"/api/conversations/{conversation_id}/end")
    return response.status_code, stt, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", help="a recording's name (repeatable); default: all")
    parser.add_argument("--skip-process", action="store_true", help="skip the in-process figures")
    parser.add_argument("--skip-devhost", action="store_true", help="skip the devhost figures")
    args = parser.parse_args()
    chosen = [(name, data) for name, data in recordings(DEFAULT_MAX_SECONDS) if not args.only or name in args.only]
    if not args.skip_process:
        recognizer = PocketsphinxRecognizer()
        print("in process (recogniser time, longest wait of another thread for the GIL):")
        for name, data in chosen:
            elapsed, stall = in_process(recognizer, decode_wav(data))
            print(f"  {name:<26} {len(data):>9} bytes   {elapsed:6.1f} s   longest GIL wait {stall * 1000:5.0f} ms")
    if args.skip_devhost:
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        host = DevHost({"TURN_REPLY_TIMEOUT_SECONDS": "200"}, Path(folder) / "devhost.log")
        print("starting devhost with embedded stand-ins ...", file=sys.stderr)
        host.start()
        try:
            print("headers claiming absurd rates (refused before any work):")
            for rate in (8, 1):
                started = time.perf_counter()
                conversation_id = host.post("/api/conversations", json={}).json()["conversation_id"]
                response = host.post(
                    f"/api/conversations/{conversation_id}/turns",
                    data=claiming(rate),
                    headers={"Content-Type": "audio/wav"},
                )
                elapsed = (time.perf_counter() - started) * 1000
                print(f"  {rate} Hz: {response.status_code} in {elapsed:.0f} ms: {response.json()['error']['message']}")
            print("through the devhost (turn's STT time; GET /api/health latency while it runs):")
            for name, data in chosen:
                status, stt, latencies = through_devhost(host, data)
                stt_text = "n/a" if stt is None else f"{stt / 1000:.1f} s"
                print(
                    f"  {name:<26} turn {status}  stt {stt_text:>7}   health n={len(latencies):<4}"
                    f" p50 {statistics.median(latencies) * 1000:5.0f} ms   max {max(latencies) * 1000:5.0f} ms"
                )
        finally:
            host.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
