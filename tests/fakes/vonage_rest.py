"""A fake of the Vonage Voice API's `POST /v1/calls` on loopback (HTTPS), which then rings our webhooks as
Vonage does.

It answers what the `vonage-voice` SDK (1.5.1, `Voice.create_call` over `vonage-http-client`) sends:
`POST https://{api_host}/v1/calls`, `Authorization: Bearer <application JWT>` (RS256 under the
application's private key, `application_id` claim), a JSON body with `to` (`[{"type": "phone",
"number"}]`), `from`, `answer_url`, `answer_method`, `event_url`, `event_method`,
`advanced_machine_detection` (`behavior`, `mode`), `ringing_timer`. Accepted: `201`
`{"uuid", "status": "started", "direction": "outbound", "conversation_uuid"}`. Refused in Vonage's
problem-details JSON (`{"type", "title", "detail", "invalid_parameters"?}`): 401 for another token,
400 for a number that is no number, and whatever a number's script says (`Refused`). The SDK speaks
only HTTPS, so the fake serves a self-signed certificate for 127.0.0.1 (`certificate_file`, for
REQUESTS_CA_BUNDLE).

Once it has answered, the call "rings" on a thread, as Vonage's events follow the API's answer:
`started`, `ringing`, `answered`, then machine detection's verdict (`human`, or `machine`, with
`sub_state: beep_start` in `detect_beep` mode); a machine under `behavior: hangup` is dropped
(`completed`); otherwise Vonage POSTs the answer URL (synchronous detection: after the verdict) and
follows the NCCO (`devhost.vonage_sim`), and a call whose NCCO runs out gets `completed`. A call whose
NCCO started a `record` has it delivered by `deliver_recording`: the record action's signed event, and
the file at `recording_url` (`/v1/files/{id}`) behind the application's JWT. Or nobody
answers (`Unanswered`): `started`, `ringing`, then `busy`, `unanswered`, `timeout` or `failed`.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import secrets
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from devhost.vonage_sim import Heard, VonageCall
from tests.fakes.loopback import LoopbackFake
from tests.fakes.twilio_rest import Pickup, Refused, Unanswered, recording_wav

ANSWER_SECONDS = 30.0
RING_SECONDS = 0.2
"""How long the number rings before anything happens: a real call rings for seconds, and our app notes
the call id from the API's answer before the provider's first webhook can come."""
NUMBER_DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class EndsAtOnce:
    """The network ends the call (`status`) before the API has even answered the request that placed it:
    the end event reaches the app before the call's uuid does."""

    status: str = "failed"


Script = Pickup | Unanswered | Refused | EndsAtOnce
"""As for the Twilio fake (but `Silent`); `Pickup.answered_by` is `human` or a machine (any other value is one)."""


def rsa_private_key_pem() -> str:
    """A fresh application private key, PEM (as the Vonage dashboard hands one out)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class RingingLeg:
    uuid: str
    body: dict[str, Any]
    phone: VonageCall | None = None
    answered: Heard | None = None
    events: list[str] = field(default_factory=list)
    problem: str | None = None
    rang: threading.Event = field(default_factory=threading.Event)

    def wait(self) -> RingingLeg:
        if not self.rang.wait(ANSWER_SECONDS):
            raise AssertionError(f"call {self.uuid} did not ring")
        if self.problem is not None:
            raise AssertionError(f"call {self.uuid}: {self.problem}")
        return self


class FakeVonageRest(LoopbackFake):
    _thread_name = "fake-vonage"

    def __init__(self, application_id: str, private_key_pem: str, signature_secret: str, base_url: str) -> None:
        """`base_url`: where our app is reached; `signature_secret` signs the webhooks, as Vonage's does."""
        self.application_id = application_id
        self.public_key = serialization.load_pem_private_key(private_key_pem.encode(), None).public_key()
        self.signature_secret = signature_secret
        self.base_url = base_url
        self.scripts: dict[str, Script] = {}
        self.legs: dict[str, RingingLeg] = {}
        self.requests: list[dict[str, Any]] = []
        self.files: dict[str, bytes] = {}
        self.downloads: list[str] = []
        self._folder = Path(tempfile.mkdtemp(prefix="fake-vonage-"))
        self.certificate_file = self._folder / "certificate.pem"
        self._key_file = self._folder / "key.pem"
        self._make_certificate()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    @property
    def api_host(self) -> str:
        """What VONAGE_API_HOST names to reach the fake."""
        return f"127.0.0.1:{self._port}"

    def script(self, to: str, what: Script) -> None:
        self.scripts[to.removeprefix("+")] = what

    def leg(self, call_uuid: str) -> RingingLeg:
        return self.legs[call_uuid].wait()

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certificate_file, self._key_file)
        return context

    def _make_certificate(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256())
        )
        self.certificate_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        self._key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def _application(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        self.requests.append({"method": request.method, "path": request.path, "body": body})
        if request.method == "GET" and request.path.startswith("/v1/files/"):
            return self._file(request, request.path.removeprefix("/v1/files/"))
        if request.method != "POST" or request.path != "/v1/calls":
            return _problem(404, "Not Found", "The requested resource does not exist.")
        if not self._authorized(request.headers.get("Authorization", "")):
            return _problem(401, "Unauthorized", "You did not provide correct credentials.")
        refusal = self._refusal(body)
        if refusal is not None:
            return _problem(refusal.status, "Bad Request" if refusal.status == 400 else "Error", refusal.message)
        leg = RingingLeg(str(uuid.uuid4()), body)
        self.legs[leg.uuid] = leg
        script = self.scripts.get(body["to"][0]["number"])
        if isinstance(script, EndsAtOnce):
            await asyncio.to_thread(self._ends_at_once, leg, script.status)
        else:
            threading.Thread(target=self._ring, args=(leg,), daemon=True, name=f"ring-{leg.uuid}").start()
        answer = {
            "uuid": leg.uuid,
            "status": "started",
            "direction": "outbound",
            "conversation_uuid": f"CON-{uuid.uuid4()}",
        }
        return web.json_response(answer, status=201)

    def _file(self, request: web.Request, file_id: str) -> web.Response:
        """A recording of the media API, behind the application's JWT."""
        if not self._authorized(request.headers.get("Authorization", "")):
            return _problem(401, "Unauthorized", "You did not provide correct credentials.")
        if file_id not in self.files:
            return _problem(404, "Not Found", "The requested resource does not exist.")
        self.downloads.append(file_id)
        return web.Response(body=self.files[file_id], content_type="audio/wav")

    def deliver_recording(self, call_uuid: str) -> dict[str, Any]:
        """The call's recording is done, as Vonage finishes a `record` when the call ends: the file is
        served and the record action's event is posted (signed); returns the event, to post again."""
        leg = self.legs[call_uuid]
        assert leg.phone is not None
        assert leg.answered is not None
        assert leg.answered.recording is not None, "the NCCO started no recording"
        file_id = str(uuid.uuid4())
        self.files[file_id] = recording_wav(3)
        event = {
            "start_time": "2026-12-06T23:00:00Z",
            "recording_url": f"{self.url}/v1/files/{file_id}",
            "size": len(self.files[file_id]),
            "recording_uuid": str(uuid.uuid4()),
            "end_time": "2026-12-06T23:00:03Z",
            "conversation_uuid": leg.phone.conversation_uuid,
            "timestamp": "2026-12-06T23:00:04Z",
        }
        answered = leg.phone.post(leg.answered.recording, event)
        if answered.status_code != 204:
            raise RuntimeError(f"recording event answered {answered.status_code}: {answered.text[:300]}")
        return event

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer":
            return False
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256"], options={"require": ["iat", "jti"]})  # type: ignore[arg-type]
        except jwt.PyJWTError:
            return False
        return bool(claims.get("application_id") == self.application_id)

    def _refusal(self, body: dict[str, Any]) -> Refused | None:
        to = [leg.get("number", "") for leg in body.get("to", []) if isinstance(leg, dict)]
        from_ = body.get("from", {}).get("number", "") if isinstance(body.get("from"), dict) else ""
        for number, name in ((to[0] if to else "", "to"), (from_, "from")):
            if not number or not set(number) <= NUMBER_DIGITS:
                return Refused(400, 0, f"Invalid {name} number: {number!r}")
        if not body.get("answer_url") and not body.get("ncco"):
            return Refused(400, 0, "Either answer_url or ncco must be supplied")
        script = self.scripts.get(to[0])
        return script if isinstance(script, Refused) else None

    def _dial(self, leg: RingingLeg) -> VonageCall:
        """The leg's far end, which posts Vonage's signed webhooks to our app."""
        leg.phone = VonageCall(
            self.base_url,
            self.signature_secret,
            to=leg.body["to"][0]["number"],
            caller=leg.body["from"]["number"],
            application_id=self.application_id,
            call_uuid=leg.uuid,
        )
        return leg.phone

    def _ends_at_once(self, leg: RingingLeg, status: str) -> None:
        try:
            self._dial(leg)
            [event_url] = leg.body["event_url"]
            self._event(leg, event_url, status=status)
        except Exception as error:  # the test learns of it through `leg`
            leg.problem = f"{type(error).__name__}: {error}"
        finally:
            leg.rang.set()

    def _ring(self, leg: RingingLeg) -> None:
        time.sleep(RING_SECONDS)
        script = self.scripts.get(leg.body["to"][0]["number"], Pickup())
        phone = self._dial(leg)
        [event_url] = leg.body["event_url"]
        try:
            for status in ("started", "ringing"):
                self._event(leg, event_url, status=status)
            if isinstance(script, Unanswered):
                self._event(leg, event_url, status=script.status)
                return
            self._event(leg, event_url, status="answered")
            detection = leg.body.get("advanced_machine_detection") or {}
            machine = isinstance(script, Pickup) and script.answered_by != "human"
            if detection:
                verdict: dict[str, str] = {"status": "machine" if machine else "human"}
                if machine and detection.get("mode") == "detect_beep":
                    verdict["sub_state"] = "beep_start"
                self._event(leg, event_url, **verdict)
                if machine and detection.get("behavior") == "hangup":
                    self._event(leg, event_url, status="completed")
                    return
            [answer_url] = leg.body["answer_url"]
            leg.answered = phone.follow(phone.post(answer_url, phone.fields()))
            if leg.answered.hung_up or leg.answered.dialled:
                self._event(leg, event_url, status="completed")
        except Exception as error:  # the test learns of it through `wait`
            leg.problem = f"{type(error).__name__}: {error}"
        finally:
            leg.rang.set()

    def _event(self, leg: RingingLeg, url: str, **fields: str) -> None:
        assert leg.phone is not None
        answered = leg.phone.post(url, leg.phone.fields(direction="outbound", **fields))
        if answered.status_code != 200:
            raise RuntimeError(f"event {fields} answered {answered.status_code}: {answered.text[:300]}")
        leg.events.append(fields.get("status", ""))


def _problem(status: int, title: str, detail: str) -> web.Response:
    """An error as the Vonage Voice API writes it (RFC 7807 problem details)."""
    body = {
        "type": f"https://developer.vonage.com/api-errors#{title.lower().replace(' ', '-')}",
        "title": title,
        "detail": detail,
        "instance": secrets.token_hex(8),
    }
    return web.json_response(body, status=status)
