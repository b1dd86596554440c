"""A phone call as Twilio would place it against our webhooks: signed, following our TwiML.

Each request is signed exactly as Twilio signs it (the SDK's `RequestValidator.compute_signature`
over the URL and form, under the account's auth token). The answer's TwiML is followed as Twilio
follows it: `<Play>` fetches the audio, `<Say>` is noted, `<Gather>` waits for the caller's next line
(sent as `SpeechResult` to its action), `<Redirect>` posts again, `<Hangup>` and `<Dial>` end the call.
A `<Gather>` without `actionOnEmptyResult` plays what it nests and, the caller keeping silent, falls
through to the next verb, as Twilio does; a caller set to speak over a sentence (`speak_over`) cuts
the `<Play>` short when its gather allows barge-in, and their words go to that gather's action.
The e2e tests drive it; `make call` will.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urljoin
from xml.etree import ElementTree

import requests
from twilio.request_validator import RequestValidator

MAX_REDIRECTS = 10
TIMEOUT_SECONDS = 15
"""Twilio's own limit on a webhook's answer."""


@dataclass
class Played:
    url: str
    status: int
    audio: bytes
    fetched_at: float = field(default_factory=time.perf_counter)
    """When the audio had arrived (`time.perf_counter`): the caller could hear it from then."""


@dataclass
class Heard:
    """What one step of the call did: the caller heard `played` and `said`, then the call listens at
    `listening` (a gather action), or it ended (`hung_up`, or `dialled` a number)."""

    played: list[Played] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    redirects: int = 0
    listening: str | None = None
    hung_up: bool = False
    dialled: str | None = None
    recording: str | None = None
    """Where Twilio would post the call's recording, once the TwiML started one (`<Start><Recording>`)."""
    twiml: list[str] = field(default_factory=list)


class TwilioCall:
    """One inbound call to `to`, with a fresh CallSid; or, given `direction="outbound-api"` (and the
    `call_sid` Twilio gave it), a call our app placed, answered by whoever AMD says (`answered_by`).

    `public_url` is the origin Twilio would call (PUBLIC_BASE_URL, a tunnel's): requests are signed
    for it, as Twilio signs what it calls, and sent to `base_url`, the proxy's way in.
    """

    def __init__(
        self,
        base_url: str,
        auth_token: str,
        *,
        to: str = "+18005551212",
        caller: str = "+15005550006",
        public_url: str | None = None,
        call_sid: str | None = None,
        account_sid: str | None = None,
        direction: str = "inbound",
        answered_by: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.public_url = (public_url or base_url).rstrip("/")
        self.call_sid = call_sid or "CA" + secrets.token_hex(16)
        self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.direction = direction
        self.answered_by = answered_by
        self._validator = RequestValidator(auth_token)
        self.to = to
        self.caller = caller
        self.listening: str | None = None
        self.recording: str | None = None
        self.cut_in: tuple[int, str] | None = None

    def speak_over(self, sentence: int, line: str) -> None:
        """In the next reply, the caller says `line` as its `sentence`-th audio (from 0) starts playing."""
        self.cut_in = (sentence, line)

    def params(self, **extra: str) -> dict[str, str]:
        return {
            "CallSid": self.call_sid,
            "AccountSid": self.account_sid,
            "From": self.caller,
            "To": self.to,
            "Direction": self.direction,
            "ApiVersion": "2010-04-01",
            "CallStatus": "in-progress",
            **({} if self.answered_by is None else {"AnsweredBy": self.answered_by}),
            **extra,
        }

    def post(self, url: str, params: dict[str, str], signature: str | None = None) -> requests.Response:
        """POST the form to `url` as Twilio does, signed (or with the given `signature`)."""
        absolute = urljoin(self.public_url + "/", url)
        signed = self._validator.compute_signature(absolute, params) if signature is None else signature
        return requests.post(
            self._reachable(absolute),
            data=params,
            headers={"X-Twilio-Signature": signed},
            timeout=TIMEOUT_SECONDS,
            allow_redirects=False,
        )

    def answer(self, url: str = "/api/voice/twilio/incoming") -> Heard:
        """The call rings our incoming webhook (a placed call: the answer `url` it was placed with)."""
        return self.follow(self.post(url, self.params(CallStatus="ringing")))

    def say(self, line: str, *, digits: str = "") -> Heard:
        """The caller says `line` (or presses `digits`) where the call listens."""
        if self.listening is None:
            raise RuntimeError("the call is not listening")
        extra = {"SpeechResult": line, "Confidence": "0.9"} if line else {}
        if digits:
            extra["Digits"] = digits
        return self.follow(self.post(self.listening, self.params(**extra)))

    def hang_up(
        self, status: str = "completed", duration: str = "42", url: str = "/api/voice/twilio/status"
    ) -> requests.Response:
        """Twilio's status callback for the call's end, `duration` seconds after it was answered."""
        return self.post(url, self.params(CallStatus=status, CallDuration=duration))

    def follow(self, response: requests.Response, heard: Heard | None = None) -> Heard:
        """Do what the TwiML says, as Twilio would, until the call listens or ends."""
        heard = heard or Heard()
        if response.status_code != 200 or not response.headers.get("Content-Type", "").startswith("text/xml"):
            raise RuntimeError(f"not TwiML: {response.status_code} {response.text[:500]}")
        heard.twiml.append(response.text)
        self.listening = None
        for verb in ElementTree.fromstring(response.text):
            if verb.tag == "Gather":
                spoken_over = self._gathered(verb, heard)
                if spoken_over is not None:
                    return self.follow(self.post(verb.attrib["action"], self.params(**spoken_over)), heard)
                if verb.attrib.get("actionOnEmptyResult") != "true":
                    continue  # the caller kept silent: Twilio moves on to the next verb
                self.listening = heard.listening = verb.attrib["action"]
                return heard
            if verb.tag == "Redirect":
                if heard.redirects >= MAX_REDIRECTS:
                    raise RuntimeError("too many redirects")
                heard.redirects += 1
                return self.follow(self.post(verb.text or "", self.params()), heard)
            if verb.tag == "Hangup":
                heard.hung_up = True
                return heard
            if verb.tag == "Dial":
                heard.dialled = verb.text
                return heard
            if verb.tag == "Start":
                for inner in verb:
                    if inner.tag == "Recording":
                        self.recording = heard.recording = inner.attrib["recordingStatusCallback"]
                continue
            self._speak(verb, heard)
        heard.hung_up = True  # Twilio hangs up when the TwiML runs out
        return heard

    def _gathered(self, gather: ElementTree.Element, heard: Heard) -> dict[str, str] | None:
        """Play what the gather nests; the caller's words if they speak over one of its `<Play>`s
        (barge-in, unless the gather turns it off), which cuts the rest short."""
        for inner in gather:
            cut_in = self.cut_in
            if inner.tag == "Play" and cut_in is not None and cut_in[0] == len(heard.played):
                self._speak(inner, heard)
                if gather.attrib.get("bargeIn") != "false":
                    self.cut_in = None
                    return {"SpeechResult": cut_in[1], "Confidence": "0.9"}
                continue
            self._speak(inner, heard)
        return None

    def _reachable(self, url: str) -> str:
        """Where a URL on the public origin is reached from here."""
        if url.startswith(self.public_url + "/"):
            return self.base_url + url[len(self.public_url) :]
        return url

    def _speak(self, verb: ElementTree.Element, heard: Heard) -> None:
        if verb.tag == "Play":
            fetched = requests.get(self._reachable(verb.text or ""), timeout=TIMEOUT_SECONDS)
            heard.played.append(Played(verb.text or "", fetched.status_code, fetched.content))
        elif verb.tag == "Say":
            heard.said.append(verb.text or "")
