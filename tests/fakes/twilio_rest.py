"""A fake of Twilio's REST Calls resource on loopback, which then rings our webhooks as Twilio does.

It answers what the `twilio` SDK (9.13.0, `client.calls.create`) sends:
`POST /2010-04-01/Accounts/{AccountSid}/Calls.json`, HTTP basic auth `AccountSid:AuthToken`, a form of
`To`, `From`, `Url`, `Method`, `StatusCallback`, `StatusCallbackMethod`, `StatusCallbackEvent`,
`MachineDetection`, `Timeout` (twilio.com/docs/voice/api/call-resource#create-a-call-resource).
Accepted: `201` and the call resource's JSON (`sid` CA…, `status` queued, `direction` outbound-api, …).
Refused as Twilio refuses (twilio.com/docs/errors), with its error JSON `{"code", "message", "more_info",
"status"}`: 401 code 20003 for other credentials, 400 code 21211 for a `To` that is no number, 21212
for such a `From`, 21205 without `Url`, 21201 without `To`; and whatever a number's script says
(21219 unverified, a 429 code 20429, a 500).

Once it has answered, the number "rings" (on a thread, as Twilio's call progresses after the API
answers): its script says who picks up (`Pickup`, AMD's `AnsweredBy`), and the fake posts our `Url`
signed with the auth token, `Direction=outbound-api`, and follows the TwiML (`devhost.phone_sim`);
a call that ends there (hang-up, voicemail) gets its status callback `completed`. A call whose TwiML
started a recording (`<Start><Recording>`) has it delivered by `deliver_recording`: the signed recording
status callback, and the media at `RecordingUrl` + `.wav` behind basic auth. Or nobody picks up
(`Unanswered`): only the status callback comes, with `busy`, `no-answer` or `failed`. A person's call
stays up for the test to go on talking (`call.phone`).
"""

from __future__ import annotations

import base64
import io
import re
import secrets
import threading
import time
import wave
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import numpy as np
from aiohttp import web

from devhost.phone_sim import Heard, TwilioCall
from tests.fakes.loopback import LoopbackFake

CALLS_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Calls\.json$")
RECORDING_PATH = re.compile(r"^/2010-04-01/Accounts/(AC[0-9a-f]{32})/Recordings/(RE[0-9a-f]{32})\.wav$")
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
ANSWER_SECONDS = 30.0
RING_SECONDS = 0.2
"""How long the number rings before anything happens: a real call rings for seconds, and our app notes
the call id from the API's answer before the provider's first webhook can come."""


@dataclass(frozen=True)
class Pickup:
    """The number answers; AMD says `answered_by` (human, machine_start, machine_end_beep, fax, unknown)."""

    answered_by: str = "human"


@dataclass(frozen=True)
class Unanswered:
    """Nobody answers: the status callback says `status` (busy, no-answer, failed, canceled)."""

    status: str = "no-answer"


@dataclass(frozen=True)
class Silent:
    """Twilio took the call and then says nothing more: no answer, no status callback (one lost)."""


@dataclass(frozen=True)
class Refused:
    """The API refuses to place the call: Twilio's HTTP `status` and error `code`."""

    status: int
    code: int
    message: str


Script = Pickup | Unanswered | Silent | Refused


@dataclass
class RingingCall:
    """One call the fake accepted: what was asked, and what happened when it rang."""

    sid: str
    form: dict[str, list[str]]
    phone: TwilioCall | None = None
    answered: Heard | None = None
    ended: str | None = None
    """The CallStatus of the status callback sent, once sent."""
    problem: str | None = None
    rang: threading.Event = field(default_factory=threading.Event)

    def field(self, name: str) -> str:
        return self.form.get(name, [""])[0]

    def wait(self) -> RingingCall:
        if not self.rang.wait(ANSWER_SECONDS):
            raise AssertionError(f"call {self.sid} did not ring")
        if self.problem is not None:
            raise AssertionError(f"call {self.sid}: {self.problem}")
        return self


class FakeTwilioRest(LoopbackFake):
    _thread_name = "fake-twilio"

    def __init__(self, account_sid: str, auth_token: str, base_url: str) -> None:
        """`base_url`: where our app is reached (the webhook URLs it gives name the same origin)."""
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.base_url = base_url
        self.scripts: dict[str, Script] = {}
        self.calls: dict[str, RingingCall] = {}
        self.requests: list[dict[str, Any]] = []
        self.recordings: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self._lock = threading.Lock()

    def script(self, to: str, what: Script) -> None:
        self.scripts[to] = what

    def call(self, sid: str) -> RingingCall:
        return self.calls[sid].wait()

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        form: dict[str, list[str]] = {}
        for name, value in (await request.post()).items():
            form.setdefault(name, []).append(str(value))
        with self._lock:
            self.requests.append({"method": request.method, "path": request.path, "form": form})
        media = RECORDING_PATH.fullmatch(request.path)
        if request.method == "GET" and media is not None:
            return self._recording(request, media.group(1), media.group(2))
        match = CALLS_PATH.fullmatch(request.path)
        if request.method != "POST" or match is None:
            return _error(404, 20404, "The requested resource was not found")
        if not self._authorized(request.headers.get("Authorization", ""), match.group(1)):
            return _error(401, 20003, "Authenticate")
        refusal = self._refusal(form)
        if refusal is not None:
            return _error(refusal.status, refusal.code, refusal.message)
        sid = "CA" + secrets.token_hex(16)
        call = RingingCall(sid, form)
        self.calls[sid] = call
        threading.Thread(target=self._ring, args=(call,), daemon=True, name=f"ring-{sid}").start()
        return web.json_response(self._resource(sid, form), status=201)

    def _recording(self, request: web.Request, account_sid: str, recording_sid: str) -> web.Response:
        """A recording's media (`…/Recordings/RE….wav`), behind the account's credentials as by default."""
        if not self._authorized(request.headers.get("Authorization", ""), account_sid):
            return _error(401, 20003, "Authenticate")
        if recording_sid not in self.recordings:
            return _error(404, 20404, "The requested resource was not found")
        self.downloads.append(recording_sid)
        return web.Response(body=self.recordings[recording_sid], content_type="audio/x-wav")

    def deliver_recording(self, sid: str, *, seconds: int = 12) -> tuple[str, dict[str, str]]:
        """The call's recording is done, as Twilio finishes one when the call ends: its media is served and
        the recording status callback the TwiML asked for is posted (signed); returns the RecordingSid and
        the callback's form, for a test to post again."""
        call = self.calls[sid]
        assert call.phone is not None
        assert call.phone.recording is not None, "the TwiML started no recording"
        recording_sid = "RE" + secrets.token_hex(16)
        self.recordings[recording_sid] = recording_wav(seconds)
        form = {
            "AccountSid": self.account_sid,
            "CallSid": sid,
            "RecordingSid": recording_sid,
            "RecordingUrl": f"{self.url}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}",
            "RecordingStatus": "completed",
            "RecordingDuration": str(seconds),
            "RecordingChannels": "1",
            "RecordingSource": "StartCallRecordingTwiML",
            "RecordingStartTime": formatdate(usegmt=True).replace("GMT", "+0000"),
        }
        answered = call.phone.post(call.phone.recording, form)
        if answered.status_code != 204:
            raise RuntimeError(f"recording callback answered {answered.status_code}: {answered.text[:300]}")
        return recording_sid, form

    def _authorized(self, header: str, account_sid: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return account_sid == self.account_sid and secrets.compare_digest(header, f"Basic {expected}")

    def _refusal(self, form: dict[str, list[str]]) -> Refused | None:
        to, from_ = form.get("To", [""])[0], form.get("From", [""])[0]
        if not to:
            return Refused(400, 21201, "No 'To' number is specified")
        if not E164.fullmatch(to):
            return Refused(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not E164.fullmatch(from_):
            return Refused(400, 21212, f"Invalid 'From' Phone Number: {from_}")
        if not form.get("Url"):
            return Refused(400, 21205, "Url parameter is required.")
        script = self.scripts.get(to)
        return script if isinstance(script, Refused) else None

    def _resource(self, sid: str, form: dict[str, list[str]]) -> dict[str, Any]:
        now = formatdate(usegmt=True).replace("GMT", "+0000")
        base = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}"
        return {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": form["From"][0],
            "from_formatted": form["From"][0],
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN" + secrets.token_hex(16),
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {
                "recordings": f"{base}/Recordings.json",
                "notifications": f"{base}/Notifications.json",
            },
            "to": form["To"][0],
            "to_formatted": form["To"][0],
            "trunk_sid": None,
            "uri": f"{base}.json",
        }

    def _ring(self, call: RingingCall) -> None:
        time.sleep(RING_SECONDS)
        script = self.scripts.get(call.field("To"), Pickup())
        phone = TwilioCall(
            self.base_url,
            self.auth_token,
            to=call.field("To"),
            caller=call.field("From"),
            call_sid=call.sid,
            account_sid=self.account_sid,
            direction="outbound-api",
            answered_by=script.answered_by if isinstance(script, Pickup) else None,
        )
        call.phone = phone
        try:
            if isinstance(script, Silent):
                return
            if isinstance(script, Unanswered):
                self._end(call, script.status, "0")
            else:
                call.answered = phone.answer(call.field("Url"))
                if call.answered.hung_up or call.answered.dialled:
                    self._end(call, "completed", "9")
        except Exception as error:  # the test learns of it through `wait`
            call.problem = f"{type(error).__name__}: {error}"
        finally:
            call.rang.set()

    def _end(self, call: RingingCall, status: str, duration: str) -> None:
        assert call.phone is not None
        answered = call.phone.hang_up(status, duration=duration, url=call.field("StatusCallback"))
        if answered.status_code != 204:
            raise RuntimeError(f"status callback answered {answered.status_code}: {answered.text[:300]}")
        call.ended = status


def recording_wav(seconds: int) -> bytes:
    """A recording as Twilio's `.wav` media is: 8 kHz, 16-bit mono (a quiet tone here)."""
    rate = 8000
    samples = (np.sin(np.arange(rate * seconds) * 2 * np.pi * 440 / rate) * 3000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return out.getvalue()


def _error(status: int, code: int, message: str) -> web.Response:
    """An error as Twilio's REST API writes it."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)
