"""A phone call as Vonage would place it against our webhooks: signed, following our NCCO.

Each request carries `Authorization: Bearer <JWT>` signed as Vonage signs it: HS256 under the signature
secret, with `payload_hash` the SHA-256 of the JSON body (POST) or of the query as a compact JSON object
(the answer webhook's GET). The NCCO is followed as Vonage follows it: `stream` fetches the audio, `talk`
is noted, `input` waits for the caller's next line (sent as a speech result to its eventUrl), `connect`
and an NCCO that runs out end the call. An input that gives the caller a second or less to start
speaking is one the silent caller lets time out, so it posts back at once: our filler's hold, or the
pause after a sentence of a reply that goes on. A caller set to speak over a sentence (`speak_over`)
cuts a `stream` with `bargeIn` short, and the input after it hears their words. The e2e tests drive it.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urljoin

import jwt
import requests

from devhost.phone_sim import Played
from shared.phone.vonage import HOLD_SECONDS

MAX_HOLDS = 10
MAX_PAUSES = 100
TIMEOUT_SECONDS = 15
ANSWER = "/api/voice/vonage/answer"
EVENT = "/api/voice/vonage/event"


@dataclass
class Heard:
    """What one step of the call did: the caller heard `played` and `said`, then the call listens at
    `listening` (an input's eventUrl), or it ended (`hung_up`, or connected to `dialled`)."""

    played: list[Played] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    holds: int = 0
    pauses: int = 0
    """Short inputs after a sentence of a reply that went on, which the silent caller let pass."""
    listening: str | None = None
    hung_up: bool = False
    dialled: str | None = None
    recording: str | None = None
    """Where Vonage would post the call's recording, once the NCCO started one (`record`)."""
    ncco: list[list[dict[str, Any]]] = field(default_factory=list)


class VonageCall:
    """One inbound call to `to` (written as Vonage writes numbers, without `+`), with a fresh leg uuid; or,
    given the leg `call_uuid` Vonage gave it, a call our app placed."""

    def __init__(
        self,
        base_url: str,
        signature_secret: str,
        *,
        to: str = "14155550123",
        caller: str = "447700900000",
        application_id: str | None = None,
        call_uuid: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = signature_secret
        self.uuid = call_uuid or str(uuid.uuid4())
        self.conversation_uuid = f"CON-{uuid.uuid4()}"
        self.application_id = application_id or str(uuid.uuid4())
        self.to = to
        self.caller = caller
        self.listening: str | None = None
        self.cut_in: tuple[int, str] | None = None

    def speak_over(self, sentence: int, line: str) -> None:
        """In the next reply, the caller says `line` as its `sentence`-th stream (from 0) starts playing."""
        self.cut_in = (sentence, line)

    def fields(self, **extra: Any) -> dict[str, Any]:
        return {
            "to": self.to,
            "from": self.caller,
            "uuid": self.uuid,
            "conversation_uuid": self.conversation_uuid,
            **extra,
        }

    def authorization(self, payload: bytes, secret: str | None = None) -> str:
        claims = {
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "api_key": "local",
            "application_id": self.application_id,
            "payload_hash": hashlib.sha256(payload).hexdigest(),
        }
        return "Bearer " + jwt.encode(claims, secret or self.secret, algorithm="HS256")

    def get(self, url: str, query: dict[str, str], authorization: str | None = None) -> requests.Response:
        """GET `url` with `query`, signed as Vonage signs its answer webhook (or with `authorization`)."""
        payload = json.dumps(query, separators=(",", ":"), ensure_ascii=False).encode()
        signed = self.authorization(payload) if authorization is None else authorization
        return requests.get(
            f"{urljoin(self.base_url + '/', url)}?{urlencode(query)}",
            headers={"Authorization": signed},
            timeout=TIMEOUT_SECONDS,
        )

    def post(self, url: str, fields: dict[str, Any], authorization: str | None = None) -> requests.Response:
        """POST `fields` as Vonage's JSON to `url`, signed (or with `authorization`)."""
        body = json.dumps(fields, separators=(",", ":")).encode()
        signed = self.authorization(body) if authorization is None else authorization
        return requests.post(
            urljoin(self.base_url + "/", url),
            data=body,
            headers={"Authorization": signed, "Content-Type": "application/json"},
            timeout=TIMEOUT_SECONDS,
        )

    def answer_response(self) -> requests.Response:
        """The call is answered: Vonage GETs our answer URL."""
        return self.get(ANSWER, self.fields(region_url="https://api-us-3.vonage.com"))

    def answer(self) -> Heard:
        return self.follow(self.answer_response())

    def say(self, line: str, *, digits: str = "") -> Heard:
        """The caller says `line` (or presses `digits`; neither: silence until the input's start timeout)
        where the call listens."""
        return self.follow(self.say_once(line, digits=digits))

    def say_once(self, line: str, *, digits: str = "") -> requests.Response:
        """The input webhook for `line`, its answer not followed (a caller who hangs up while it plays)."""
        if self.listening is None:
            raise RuntimeError("the call is not listening")
        return self.post(self.listening, self._heard(line, digits))

    def hang_up(
        self, status: str = "completed", duration: Any = "42", *, url: str = EVENT, direction: str = "inbound"
    ) -> requests.Response:
        """Vonage's event webhook for the call's end, `duration` seconds after it was answered (a string,
        as Vonage writes it; None leaves it out); a call we placed: to its event `url`, `outbound`."""
        fields = self.fields(status=status, direction=direction)
        if duration is not None:
            fields["duration"] = duration
        return self.post(url, fields)

    def _heard(self, line: str, digits: str = "") -> dict[str, Any]:
        if line:
            speech = {"timeout_reason": "end_on_silence_timeout", "results": [{"confidence": "0.9", "text": line}]}
        else:
            speech = {"timeout_reason": "start_timeout"}
        return self.fields(speech=speech, dtmf={"digits": digits or None, "timed_out": bool(digits)})

    def follow(self, response: requests.Response, heard: Heard | None = None) -> Heard:
        """Do what the NCCO says, as Vonage would, until the call listens or ends.

        An input giving the caller no more than HOLD_SECONDS to start is our "one moment" hold: the
        caller waits quietly, so it comes back with silence at once."""
        heard = heard or Heard()
        if response.status_code != 200 or not response.headers.get("Content-Type", "").startswith("application/json"):
            raise RuntimeError(f"not an NCCO: {response.status_code} {response.text[:500]}")
        ncco = response.json()
        heard.ncco.append(ncco)
        self.listening = None
        still_talking = ""  # words begun over a stream Vonage did not listen through: the next input hears them
        for index, action in enumerate(ncco):
            kind = action["action"]
            if kind == "stream":
                [url] = action["streamUrl"]
                cut_in = self.cut_in
                spoken_over = cut_in is not None and cut_in[0] == len(heard.played)
                fetched = requests.get(url, timeout=TIMEOUT_SECONDS)
                heard.played.append(Played(url, fetched.status_code, fetched.content))
                if spoken_over and cut_in is not None:
                    self.cut_in = None
                    if not action.get("bargeIn"):
                        still_talking = cut_in[1]
                        continue
                    [listening] = next(a for a in ncco[index:] if a["action"] == "input")["eventUrl"]
                    return self.follow(self.post(listening, self._heard(cut_in[1])), heard)
            elif kind == "talk":
                heard.said.append(action["text"])
            elif kind == "record":
                [heard.recording] = action["eventUrl"]
            elif kind == "input":
                [url] = action["eventUrl"]
                if action.get("speech", {}).get("startTimeout", 10) <= HOLD_SECONDS:
                    if not still_talking:
                        self._let_pass(ncco, heard)
                    return self.follow(self.post(url, self._heard(still_talking)), heard)
                self.listening = heard.listening = url
                return heard
            elif kind == "connect":
                heard.dialled = "+" + action["endpoint"][0]["number"]
                return heard
        heard.hung_up = True  # Vonage hangs up when the NCCO runs out
        return heard

    @staticmethod
    def _let_pass(ncco: list[dict[str, Any]], heard: Heard) -> None:
        """Count a short input the silent caller lets time out: a hold after our filler, or a pause after a
        sentence of a reply that goes on."""
        if any(action["action"] == "stream" for action in ncco):
            if heard.pauses >= MAX_PAUSES:
                raise RuntimeError("too many pauses")
            heard.pauses += 1
        else:
            if heard.holds >= MAX_HOLDS:
                raise RuntimeError("held too many times")
            heard.holds += 1
