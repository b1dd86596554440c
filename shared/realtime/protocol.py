"""The realtime channel's wire: who a Web PubSub connection is, how the hub's events prove they come
from it, and the messages a session exchanges (docs/realtime-protocol.md describes them for clients).

Facts (notes providers.md §1, learn.microsoft.com azure-web-pubsub reference-cloud-events): the hub
signs each upstream request with `ce-signature: sha256=<hex HMAC-SHA256(access key, connection id)>`
(one entry per key, comma-joined) and opens with an `OPTIONS` handshake naming itself in
`WebHook-Request-Origin`. A connection's user id is the one its client token names (`sub`), so the
token we sign at negotiate carries `<tenant>.<conversation id>` and every event of the connection
tells which conversation, and whose, it belongs to.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import uuid
import wave
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from shared.errors import InvalidAudio
from shared.tenancy import TENANT_ID
from shared.turn_requests import MAX_TEXT_CHARS, ClientText

WEB_CHANNEL = "web"
"""The conversations' `channel` for sessions started by negotiate."""
SYSTEM_EVENT = "azure.webpubsub.sys."
USER_EVENT = "azure.webpubsub.user."
MAX_EVENT_BYTES = 1024 * 1024
"""Web PubSub's message limit: no upstream event is larger (a bigger body is not from the hub)."""
PCM_RATE = 16000
"""A binary utterance without a WAV header is 16 kHz mono 16-bit little-endian PCM."""


class RealtimeNotConfigured(Exception):
    """WEB_PUBSUB_CONNECTION_STRING is empty or not a Web PubSub connection string."""


@dataclass(frozen=True)
class Hub:
    """The service's endpoint and access key, parsed from its connection string."""

    endpoint: str
    access_key: str
    name: str

    @classmethod
    def from_connection_string(cls, connection_string: str, name: str) -> Hub:
        """`Endpoint=…;AccessKey=…;Version=1.0;[Port=…;]` as the service SDK parses it (keys case-blind)."""
        parts = {
            key.strip().lower(): value.strip()
            for key, _, value in (item.partition("=") for item in connection_string.split(";"))
            if key.strip()
        }
        endpoint, key = parts.get("endpoint", ""), parts.get("accesskey", "")
        if not endpoint.startswith(("http://", "https://")) or not key:
            raise RealtimeNotConfigured("WEB_PUBSUB_CONNECTION_STRING needs Endpoint=http(s)://… and AccessKey=…")
        if parts.get("port"):
            split = urlsplit(endpoint)
            endpoint = f"{split.scheme}://{split.hostname}:{parts['port']}"
        return cls(endpoint.rstrip("/").lower(), key, name)

    @classmethod
    def from_endpoint(cls, endpoint: str, name: str) -> Hub:
        """The service reached with an Entra identity (WEB_PUBSUB_ENDPOINT): no key, so no `ce-signature` holds;
        its events prove themselves with the service's own token (shared/realtime/upstream.py)."""
        return cls(endpoint.rstrip("/").lower(), "", name)

    def origin_allowed(self, origin: str | None) -> bool:
        """The abuse-protection handshake's origin is this service's host (with or without its port)."""
        split = urlsplit(self.endpoint)
        return origin is not None and origin.lower() in {split.netloc, split.hostname}

    def signed(self, connection_id: str | None, signature: str | None) -> bool:
        """Any entry of `ce-signature` is our key's HMAC of the connection id (constant-time)."""
        if not connection_id or not signature or not self.access_key:
            return False
        digest = hmac.new(self.access_key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()
        expected = f"sha256={digest}"
        return any(hmac.compare_digest(expected, entry.strip()) for entry in signature.split(","))


@dataclass(frozen=True)
class Session:
    """The conversation (and its tenant) a connection belongs to."""

    tenant: str
    conversation_id: str

    @property
    def user_id(self) -> str:
        return f"{self.tenant}.{self.conversation_id}"

    @property
    def group(self) -> str:
        """The group the conversation's replies go to; its client token may join this one only."""
        return group_of(self.conversation_id)

    @classmethod
    def of_user(cls, user_id: str | None) -> Session | None:
        tenant, _, conversation_id = (user_id or "").partition(".")
        if not TENANT_ID.fullmatch(tenant):
            return None
        try:
            return cls(tenant, str(uuid.UUID(conversation_id)))
        except ValueError:
            return None


def group_of(conversation_id: str) -> str:
    return f"conversation.{conversation_id}"


class TypedUtterance(BaseModel):
    """An `utterance` event with `dataType: json`: what the user typed, under an id the client chose,
    so a resent message is the same turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[!-~]{1,64}$", description="The client's id of this utterance (1-64 visible ASCII).")
    text: ClientText = Field(min_length=1, max_length=MAX_TEXT_CHARS)


class Interruption(BaseModel):
    """An `interrupt` event (barge-in): stop the turn's reply; the client played `played` of its sentences
    (the one cut off included), which is what the turn records as said."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    turn: int = Field(ge=0, le=999_999_999, description="The turn whose reply is interrupted.")
    played: int = Field(ge=0, le=999, description="Sentences of that reply the client started playing.")


class Negotiation(BaseModel):
    """`POST /api/realtime/negotiate`: a new conversation (agent, language), or an existing one to rejoin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: ClientText | None = Field(
        default=None, max_length=63, description="The agent to talk to (DEFAULT_AGENT if none)."
    )
    language: ClientText | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="BCP-47 tag; the agent's own if none.",
    )
    conversation_id: uuid.UUID | None = Field(
        default=None, description="Rejoin this conversation (a reconnect) instead of starting one."
    )


class Negotiated(BaseModel):
    """Where to connect: `url` carries a client token for this conversation's group only."""

    url: str = Field(description="wss://…/client/hubs/<hub>?access_token=… (subprotocol json.webpubsub.azure.v1).")
    conversation_id: str
    group: str = Field(description="The group the replies go to; the token lets the client join no other.")
    expires_in_seconds: int = Field(description="The token's lifetime: connect before it ends, negotiate again after.")
    greeting: str | None = Field(default=None, description="The agent's greeting, for a new conversation.")


def error(code: str, message: str, utterance_id: str | None = None) -> dict[str, Any]:
    """The `error` message: what the client sent was not taken (the session goes on)."""
    body: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if utterance_id is not None:
        body["id"] = utterance_id
    return body


def pcm_as_wav(pcm: bytes) -> bytes:
    """Raw 16 kHz mono 16-bit little-endian PCM (what a browser's capture yields) as a WAV, so it is heard
    and bounded as any spoken turn is; InvalidAudio for no bytes or an odd count."""
    if not pcm or len(pcm) % 2:
        raise InvalidAudio("Raw audio is 16 kHz mono 16-bit PCM: a whole number of samples, at least one.")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(PCM_RATE)
        writer.writeframes(pcm)
    return buffer.getvalue()
