"""Time to a phone caller's first audio: the first sentence played as soon as it is spoken vs the whole reply.

Providers are the test fakes on loopback at the profile of `bench/first_audio.py`: the chat model
answers its first token after 300 ms, then 30 tokens a second; Sarvam speaks a sentence in 200 ms.
Each reply has three sentences. A simulated Twilio call (`devhost/phone_sim.py`, signed as Twilio
signs) and a simulated Vonage call (`devhost/vonage_sim.py`) each say a line per turn to one devhost.
Per turn, from the moment the gather (Twilio) or input (Vonage) webhook is sent:

- streamed: the webhook's TwiML or NCCO has arrived and the audio of its first `<Play>` or `stream`
  has been fetched;
- whole reply: the turn's whole recording (8 kHz, as a phone fetches it) can first be fetched,
  polled every 10 ms beside the call, which is when an answer waiting for the whole reply could
  have named it.

Both are measured on the same turns, so the ratio comes from one run. Figures only: nothing here
passes or fails.

    python bench/phone_first_audio.py --turns 12 [--provider twilio|vonage]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from xml.etree import ElementTree

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results import record
from devhost.phone_sim import Heard as PhoneHeard
from devhost.phone_sim import TwilioCall
from devhost.process import DevHost
from devhost.vonage_sim import VonageCall
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.sarvam_server import FakeSarvamServer

FIRST_TOKEN_SECONDS = 0.3
TOKENS_PER_SECOND = 30.0
TTS_SECONDS_PER_SENTENCE = 0.2
REPLY = json.dumps(
    {
        "text": "We are open from 8 am to 10 pm on weekdays. On Sundays we open at 9 am and close at 6 pm. "
        "We are closed on public holidays.",
        "intent": "question",
        "cites": [],
    }
)
"""The reply and profile of `bench/first_audio.py` (a script of its own, so not imported)."""
AUTH_TOKEN = "bench-twilio-token-for-the-phone-first-audio-benchmark"
SIGNATURE_SECRET = "bench-vonage-signature-secret-for-the-phone-first-audio-benchmark"
POLL_SECONDS = 0.01


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def provider_seconds_to_first_sentence() -> float:
    """What the simulated providers alone take before the first sentence is spoken."""
    text = json.loads(REPLY)["text"]
    first_sentence_end = REPLY.index(text) + text.index(".") + 1
    tokens = len(re.findall(r"\s*\S+", REPLY[:first_sentence_end])) + 1  # the space that completes it
    return FIRST_TOKEN_SECONDS + tokens / TOKENS_PER_SECOND + TTS_SECONDS_PER_SENTENCE


def whole_reply_fetchable(host: DevHost, conversation_id: str, turn: int, stop: threading.Event) -> float | None:
    """When the turn's whole recording is first served (perf_counter), polled until `stop`."""
    path = f"/api/conversations/{conversation_id}/audio/{turn}"
    while not stop.is_set():
        if host.get(path, params={"rate": "8000"}, timeout=10).status_code == 200:
            return time.perf_counter()
        time.sleep(POLL_SECONDS)
    return None


def first_audio(response: requests.Response) -> str:
    """The first audio the webhook's answer plays: its first `<Play>` (TwiML) or `stream` (NCCO)."""
    if response.headers.get("Content-Type", "").startswith("application/json"):
        return str(next(action for action in response.json() if action["action"] == "stream")["streamUrl"][0])
    return next(verb for verb in ElementTree.fromstring(response.text).iter("Play")).text or ""


def one_turn(
    host: DevHost, phone: TwilioCall | VonageCall, conversation_id: str, turn: int
) -> tuple[float, float, int]:
    """(streamed ms, whole-reply ms, webhooks after the first for the reply's later sentences) for one turn."""
    listening = phone.listening
    if listening is None:
        raise RuntimeError("the call is not listening")
    stop = threading.Event()
    whole_at: list[float | None] = []
    poller = threading.Thread(target=lambda: whole_at.append(whole_reply_fetchable(host, conversation_id, turn, stop)))
    sent = time.perf_counter()
    poller.start()
    if isinstance(phone, TwilioCall):
        response = phone.post(listening, phone.params(SpeechResult="what are your opening hours", Confidence="0.9"))
    else:
        response = phone.say_once("what are your opening hours")
    audio = requests.get(first_audio(response), timeout=15)
    audio.raise_for_status()
    streamed = time.perf_counter() - sent
    heard = phone.follow(response)
    poller.join(timeout=30)
    stop.set()
    whole = whole_at[0] if whole_at else None
    if whole is None:
        raise RuntimeError("the whole reply was never served")
    later = heard.redirects if isinstance(heard, PhoneHeard) else heard.pauses
    return streamed * 1000, (whole - sent) * 1000, later


def sizes(host: DevHost, conversation_id: str) -> tuple[int, int]:
    """Bytes of the greeting's recording at 8 kHz (as phones fetch it) and as stored (16 kHz)."""
    path = f"/api/conversations/{conversation_id}/audio/0"
    return len(host.get(path, params={"rate": "8000"}).content), len(host.get(path).content)


def call(host: DevHost, provider: str, turns: int) -> tuple[list[tuple[float, float, int]], tuple[int, int]]:
    """One call of `turns` turns (and one more first, which loads the SDKs) on `provider`: per-turn figures,
    and the greeting's audio sizes."""
    phone: TwilioCall | VonageCall
    phone = TwilioCall(host.base, AUTH_TOKEN) if provider == "twilio" else VonageCall(host.base, SIGNATURE_SECRET)
    greeting = phone.answer()
    conversation_id = greeting.played[0].url.split("/api/conversations/", 1)[1].split("/", 1)[0]
    results = [one_turn(host, phone, conversation_id, turn) for turn in range(1, turns + 2)]
    greeting_sizes = sizes(host, conversation_id)
    phone.hang_up()
    return results[1:], greeting_sizes


def report(provider: str, results: list[tuple[float, float, int]]) -> None:
    streamed = [r[0] for r in results]
    whole = [r[1] for r in results]
    print(f"{provider}: time from the webhook to the first audio fetched, {len(results)} turns, three sentences:")
    for name, values in (("streamed: first sentence", streamed), ("whole reply first", whole)):
        print(f"  {name:<26} p50 {percentile(values, 0.5):7.0f} ms   p95 {percentile(values, 0.95):7.0f} ms")
    print(f"  ratio whole / streamed: {statistics.median(whole) / statistics.median(streamed):.2f}x (medians)")
    providers = provider_seconds_to_first_sentence() * 1000
    ours = percentile(streamed, 0.5) - providers
    print(f"  providers alone to the first sentence: {providers:.0f} ms; ours on top, streamed p50 {ours:.0f} ms")
    record(f"phone ({provider}): streamed first audio p50", percentile(streamed, 0.5), "ms")
    record(f"phone ({provider}): streamed first audio p95", percentile(streamed, 0.95), "ms")
    record(
        f"phone ({provider}): whole / streamed first audio", statistics.median(whole) / statistics.median(streamed), "x"
    )
    record(
        f"phone ({provider}): end of speech to first audio / provider floor", percentile(streamed, 0.5) / providers, "x"
    )
    later = "<Redirect>s" if provider == "twilio" else "inputs after a sentence"
    print(f"  webhooks per reply for the later sentences ({later}): {sorted({r[2] for r in results})}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=12, help="turns of each call")
    parser.add_argument("--provider", choices=["twilio", "vonage"], action="append", help="default: both")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-phone-first-audio-") as folder,
        FakeOpenAIServer(REPLY, first_token_seconds=FIRST_TOKEN_SECONDS, tokens_per_second=TOKENS_PER_SECOND) as model,
        FakeSarvamServer(tts_seconds_per_sentence=TTS_SECONDS_PER_SENTENCE) as sarvam,
    ):
        print("one devhost, fakes at the profile: first token 300 ms, 30 tokens/s, TTS 200 ms", file=sys.stderr)
        host = DevHost(
            {
                "OPENAI_BASE_URL": f"{model.url}/v1",
                "OPENAI_MODEL": "bench-model",
                "LLM_MAX_RETRIES": "0",
                "SARVAM_API_KEY": sarvam.api_key,
                "SARVAM_BASE_URL": sarvam.url,
                "TURNS_PER_GENERATION": "50",
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "VONAGE_SIGNATURE_SECRET": SIGNATURE_SECRET,
                "RATE_LIMIT_PER_KEY": "",  # the whole-reply poller asks 100 times a second
                "RATE_LIMIT_PER_TENANT": "",
                "RATE_LIMIT_PER_IP": "",
            },
            Path(folder) / "devhost.log",
        )
        host.start()
        try:
            figures = {provider: call(host, provider, args.turns) for provider in args.provider or ["twilio", "vonage"]}
        finally:
            host.stop()
    for provider, (results, (phone_bytes, stored_bytes)) in figures.items():
        report(provider, results)
        print(f"  greeting audio: {phone_bytes} bytes at 8 kHz vs {stored_bytes} bytes stored at 16 kHz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
