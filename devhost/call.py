"""`make call PROVIDER=twilio|vonage|connect`: a phone call against the running local stack, typed.

The provider's simulator (devhost/phone_sim.py, vonage_sim.py, connect_sim.py) signs each request
exactly as the provider does, with the local secret `make dev` keeps in `.devhost/`, and follows the
TwiML / NCCO / map the app answers. Each line read from stdin is the caller's speech result; an empty
line is silence; `bye` or end of input hangs up. The agent's words are printed (from the markup, or
from the conversation's transcript for audio the provider plays), with the time from sending the
caller's turn until its first audio had arrived, and every recording is saved as a WAV file.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import requests

from devhost.connect_sim import ConnectCall
from devhost.demo_key import API_KEY_FILE
from devhost.phone_sim import Played, TwilioCall
from devhost.vonage_sim import VonageCall
from shared.config import REPOSITORY_ROOT

PROVIDERS = ("twilio", "vonage", "connect")
SECRET_FILES = {
    "twilio": "twilio-auth-token",
    "vonage": "vonage-signature-secret",
    "connect": "connect-bridge-secret",
}
"""Where `make dev` keeps each provider's local secret (devhost/__main__.py makes them)."""
HANG_UP = "bye"
AUDIO = re.compile(r"/api/conversations/([0-9a-f-]{36})/audio/([0-9]+)(?:/([0-9]+))?$")


@dataclass
class Step:
    """One step of the call as the caller experienced it."""

    played: list[Played] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    """Words the provider spoke in its own voice (a filler, a re-prompt; on Connect, every reply)."""
    listening: bool = False
    ended: str | None = None


class Heard(Protocol):
    """What each simulator's step reports (its own `Heard`)."""

    @property
    def played(self) -> list[Played]: ...
    @property
    def said(self) -> list[str]: ...
    @property
    def listening(self) -> object: ...
    @property
    def hung_up(self) -> bool: ...
    @property
    def dialled(self) -> str | None: ...


class Simulated(Protocol):
    """What each simulator's call can do."""

    def answer(self) -> Heard: ...
    def say(self, line: str) -> Heard: ...
    def hang_up(self) -> object: ...


class Phone:
    """A simulated call, each step as the caller experienced it."""

    def __init__(self, call: Simulated) -> None:
        self.call = call

    def answer(self) -> Step:
        return self._step(self.call.answer())

    def say(self, line: str) -> Step:
        return self._step(self.call.say(line))

    def hang_up(self) -> None:
        self.call.hang_up()

    @staticmethod
    def _step(heard: Heard) -> Step:
        ended = None
        if heard.dialled:
            ended = f"the agent transferred the call to {heard.dialled}"
        elif heard.hung_up:
            ended = "the agent hung up"
        return Step(heard.played, heard.said, bool(heard.listening), ended)


def simulated(provider: str, base_url: str, secret: str, to: str, caller: str) -> Simulated:
    """The provider's simulator placing a call to `to` from `caller` (Vonage writes numbers without `+`)."""
    if provider == "twilio":
        return TwilioCall(base_url, secret, to=to, caller=caller)
    if provider == "vonage":
        return VonageCall(base_url, secret, to=to.lstrip("+"), caller=caller.lstrip("+"))
    return ConnectCall(base_url, secret, to=to, caller=caller)


class Transcript:
    """The agent's words for audio the provider played, read from the conversation (the demo key)."""

    def __init__(self, base_url: str, api_key: str | None) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.told: set[tuple[str, int]] = set()

    def words(self, url: str) -> str | None:
        """The reply of the turn `url` plays, once per turn (None: told already, or not readable)."""
        match = AUDIO.search(urlsplit(url).path)
        if match is None or self.api_key is None:
            return None
        conversation_id, turn = match.group(1), int(match.group(2))
        if (conversation_id, turn) in self.told:
            return None
        self.told.add((conversation_id, turn))
        response = requests.get(
            f"{self.base_url}/api/conversations/{conversation_id}", headers={"X-API-Key": self.api_key}, timeout=15
        )
        if response.status_code != 200:
            return None
        for said in response.json()["turns"]:
            if said["turn"] == turn:
                return str(said["reply"]["text"])
        return None


class Session:
    """Prints each step, saves its audio, and keeps the first-audio times."""

    def __init__(self, provider: str, transcript: Transcript, audio_dir: Path) -> None:
        self.provider = provider
        self.transcript = transcript
        self.audio_dir = audio_dir
        self.first_audio_ms: list[float] = []
        self.saved = 0

    def show(self, step: Step, sent_at: float) -> None:
        words = list(step.said)
        if self.provider != "connect":  # Connect speaks reply_text (in `said`); the others play our audio
            words += [w for w in (self.transcript.words(p.url) for p in step.played) if w]
        for line in words:
            print(f"agent: {line}")
        if step.played:
            waited = (min(p.fetched_at for p in step.played) - sent_at) * 1000
            self.first_audio_ms.append(waited)
            print(f"       [first audio after {waited:.0f} ms, {len(step.played)} recording(s)]")
        for played in step.played:
            self._save(played)
        sys.stdout.flush()

    def _save(self, played: Played) -> None:
        match = AUDIO.search(urlsplit(played.url).path)
        if played.status != 200 or match is None:
            print(f"       [audio not served: {played.status}]")
            return
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        self.saved += 1
        sentence = f"-{match.group(3)}" if match.group(3) else ""
        (self.audio_dir / f"{self.saved:03d}-turn{match.group(2)}{sentence}.wav").write_bytes(played.audio)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost.call", description=__doc__.split("\n\n")[0])
    parser.add_argument("--provider", choices=PROVIDERS, default="twilio")
    parser.add_argument("--base-url", default="http://127.0.0.1:7071", help="the running stack (`make dev`)")
    parser.add_argument(
        "--data-dir", type=Path, default=REPOSITORY_ROOT / ".devhost", help="where `make dev` keeps its secrets"
    )
    parser.add_argument("--to", default="+18005550199", help="the number called (it picks the agent)")
    parser.add_argument("--from", dest="caller", default="+15005550006", help="the caller's number")
    parser.add_argument("--audio-dir", type=Path, help="where the recordings go (default: <data-dir>/calls/<time>)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    secret_file = args.data_dir / SECRET_FILES[args.provider]
    if not secret_file.exists():
        print(f"No local {args.provider} secret in {secret_file}: run `make dev` first.", file=sys.stderr)
        return 1
    key_file = args.data_dir / API_KEY_FILE
    transcript = Transcript(args.base_url.rstrip("/"), key_file.read_text().strip() if key_file.exists() else None)
    audio_dir = args.audio_dir or args.data_dir / "calls" / time.strftime("%Y%m%d-%H%M%S")
    session = Session(args.provider, transcript, audio_dir)
    phone = Phone(simulated(args.provider, args.base_url, secret_file.read_text().strip(), args.to, args.caller))
    print(f"Calling {args.to} through {args.provider} at {args.base_url}.")
    print(f'Type what the caller says; an empty line is silence; "{HANG_UP}" or Ctrl-D hangs up.')
    try:
        return _converse(phone, session)
    except requests.ConnectionError:
        print(f"Nothing answers at {args.base_url}: is `make dev` running?", file=sys.stderr)
        return 1
    finally:
        _summary(session)


def _converse(phone: Phone, session: Session) -> int:
    sent_at = time.perf_counter()
    step = phone.answer()
    session.show(step, sent_at)
    while step.ended is None and step.listening:
        if sys.stdin.isatty():
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line or line.strip().lower() == HANG_UP:
            phone.hang_up()
            print("call ended: you hung up")
            return 0
        if not sys.stdin.isatty():
            print(f"you> {line.strip()}")
        sent_at = time.perf_counter()
        step = phone.say(line.strip())
        session.show(step, sent_at)
    print(f"call ended: {step.ended or 'the call stopped listening'}")
    return 0


def _summary(session: Session) -> None:
    if session.saved:
        print(f"{session.saved} recording(s) saved in {session.audio_dir}")
    if session.first_audio_ms:
        times = ", ".join(f"{ms:.0f}" for ms in session.first_audio_ms)
        print(f"first audio per turn: {times} ms (median {statistics.median(session.first_audio_ms):.0f} ms)")


if __name__ == "__main__":
    sys.exit(main())
