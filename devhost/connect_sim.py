"""A phone call as Amazon Connect would run it through our contact-flow snippet, against our route.

Each step builds Connect's real Lambda event (`ContactFlowEvent`, integrations/amazon-connect/'s
README) and calls the REAL bridge, `lambda_handler` of integrations/amazon-connect/lambda_function.py,
with BRIDGE_URL pointing at the host, so what is tested is what is deployed. The returned map is
followed as contact-flow.json follows it: `turn`, `silences` and `wait` become contact attributes
passed back as parameters, `reply_text` is spoken (noted) and `audio_url` fetched, `listen=false`
invokes again at once, `listen=true` waits for the caller's next line (`customer_input`), `transfer`
and `end` finish the call. The e2e tests and `make call PROVIDER=connect` drive it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

import requests

from devhost.phone_sim import Played
from shared.config import REPOSITORY_ROOT

BRIDGE = REPOSITORY_ROOT / "integrations" / "amazon-connect" / "lambda_function.py"
ROUTE = "/api/voice/connect"
MAX_HOLDS = 10
TIMEOUT_SECONDS = 15
STEP_ATTRIBUTES = ("turn", "silences", "wait")
"""The map's keys the flow keeps as contact attributes and passes back to the next invocation."""


@cache
def bridge() -> ModuleType:
    """The bridge Lambda's module, loaded from its file as the Lambda runtime loads it."""
    spec = importlib.util.spec_from_file_location("connect_bridge_lambda", BRIDGE)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {BRIDGE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Heard:
    """What one step of the call did: the flow spoke `said` (Polly) and we fetched `played`, then the
    flow listens for the caller (`listening`), or the call ended (`hung_up`, or transferred to `dialled`)."""

    played: list[Played] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    holds: int = 0
    listening: bool = False
    hung_up: bool = False
    dialled: str | None = None
    maps: list[dict[str, str]] = field(default_factory=list)


class ConnectCall:
    """One inbound contact to `to` from `caller`, with a fresh ContactId."""

    def __init__(
        self, base_url: str, bridge_secret: str, *, to: str = "+18005550199", caller: str = "+15005550006"
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = bridge_secret
        self.contact_id = str(uuid.uuid4())
        self.to = to
        self.caller = caller
        self.attributes: dict[str, str] = {}
        self.listening = False

    def event(self, parameters: dict[str, str]) -> dict[str, Any]:
        """Connect's Lambda event for this contact, with the block's invocation attributes."""
        instance = "arn:aws:connect:us-east-1:123456789012:instance/00000000-1111-2222-3333-444444444444"
        return {
            "Name": "ContactFlowEvent",
            "Details": {
                "ContactData": {
                    "Attributes": dict(self.attributes),
                    "Channel": "VOICE",
                    "ContactId": self.contact_id,
                    "CustomerEndpoint": {"Address": self.caller, "Type": "TELEPHONE_NUMBER"},
                    "CustomerId": None,
                    "Description": None,
                    "InitialContactId": self.contact_id,
                    "InitiationMethod": "INBOUND",
                    "InstanceARN": instance,
                    "LanguageCode": "en-US",
                    "MediaStreams": {"Customer": {"Audio": None}},
                    "Name": None,
                    "PreviousContactId": self.contact_id,
                    "Queue": None,
                    "References": {},
                    "SystemEndpoint": {"Address": self.to, "Type": "TELEPHONE_NUMBER"},
                },
                "Parameters": parameters,
            },
        }

    def parameters(self, customer_input: str = "") -> dict[str, str]:
        """The invocation attributes contact-flow.json passes: the step's attributes and the caller's words."""
        return {**{name: self.attributes.get(name, "") for name in STEP_ATTRIBUTES}, "customer_input": customer_input}

    def invoke(self, parameters: dict[str, str], secret: str | None = None) -> dict[str, str]:
        """The bridge Lambda invoked by the flow's block, as Connect invokes it."""
        with _environment(BRIDGE_URL=self.base_url + ROUTE, CONNECT_BRIDGE_SECRET=secret or self.secret):
            answer: dict[str, str] = bridge().lambda_handler(self.event(parameters), None)
        return answer

    def send(
        self,
        event: dict[str, Any],
        *,
        secret: str | None = None,
        timestamp: str | None = None,
        signature: str | None = None,
        body: bytes | None = None,
    ) -> requests.Response:
        """POST `event` (or raw `body`) to our route signed as the bridge signs it, or with what is given."""
        raw = json.dumps(event, separators=(",", ":")).encode() if body is None else body
        sent_at = str(int(time.time())) if timestamp is None else timestamp
        signed = bridge().sign(secret or self.secret, sent_at, raw) if signature is None else signature
        headers = {"Content-Type": "application/json"}
        if sent_at:
            headers["X-Bridge-Timestamp"] = sent_at
        if signed:
            headers["X-Bridge-Signature"] = signed
        return requests.post(self.base_url + ROUTE, data=raw, headers=headers, timeout=TIMEOUT_SECONDS)

    def answer(self) -> Heard:
        """The contact arrives: the flow's first invocation."""
        return self.follow(self.invoke(self.parameters()))

    def say(self, line: str) -> Heard:
        """The caller says `line` (empty: the input timed out) where the flow listens."""
        if not self.listening:
            raise RuntimeError("the call is not listening")
        return self.follow(self.invoke(self.parameters(line)))

    def hang_up(self) -> dict[str, str]:
        """The caller hangs up: the disconnect flow's invocation."""
        return self.invoke({**self.parameters(), "event": "disconnect"})

    def follow(self, answer: dict[str, str], heard: Heard | None = None) -> Heard:
        """Do what the map says, as contact-flow.json does, until the flow listens or the call ends."""
        heard = heard or Heard()
        heard.maps.append(answer)
        self.listening = False
        for name in STEP_ATTRIBUTES:
            self.attributes[name] = answer.get(name, "")
        if answer.get("reply_text"):
            heard.said.append(answer["reply_text"])
        if answer.get("audio_url"):
            fetched = requests.get(answer["audio_url"], timeout=TIMEOUT_SECONDS)
            heard.played.append(Played(answer["audio_url"], fetched.status_code, fetched.content))
        action = answer.get("action")
        if action == "transfer":
            heard.dialled = answer.get("transfer_to") or None
            return heard
        if action != "continue":
            heard.hung_up = True
            return heard
        if answer.get("listen") != "true":
            if heard.holds >= MAX_HOLDS:
                raise RuntimeError("held too many times")
            heard.holds += 1
            return self.follow(self.invoke(self.parameters()), heard)
        self.listening = heard.listening = True
        return heard


@contextmanager
def _environment(**variables: str) -> Iterator[None]:
    """The Lambda's environment for one invocation (it reads it per call), restored after."""
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
