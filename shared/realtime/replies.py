"""A web session's reply, sent to its Web PubSub group while the turn activity writes it.

The turn activity is the producer (the functions never hold a socket, and the event handler answers
at once): the reply stream that every channel reads is, for a web conversation, a `WebReplyStream`,
which also queues each piece for the group: `reply.delta` as the model writes, `reply.audio` as each
sentence is spoken (in order, the first long before the reply is complete), `reply.restart` when the
sentences begin again, `reply.done` with the stored turn. One sender thread sends them in order, so
neither the model nor text-to-speech waits on the network; deltas that queue up behind a send go out
as one. A delta names its character `offset` in the reply, so a retried activity, whose deltas may
be cut elsewhere, re-sends text a client places at the same offsets (docs/realtime-protocol.md).
A send that fails is logged and dropped: the turn itself is stored either way.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shared.realtime.protocol import Hub, group_of
from shared.security.tokens import trusted_url
from shared.storage.reply_stream import AnnouncedSentence, ReplyStream

if TYPE_CHECKING:
    import redis
    from azure.messaging.webpubsubservice import WebPubSubServiceClient

log = logging.getLogger(__name__)

MAX_INLINE_AUDIO_BYTES = 700_000
"""A sentence's WAV travels inside its `reply.audio` (base64, a third larger) up to this size, under Web
PubSub's 1 MB message limit; a longer one is fetched from its `path` (about 20 s of 16 kHz speech)."""
FLUSH_SECONDS = 10.0
"""How long a finished turn waits for its messages to leave before the activity returns anyway."""
SEND_TIMEOUT_SECONDS = 5
IDLE_SECONDS = 330.0
"""A sender with nothing to send this long stops (its turn failed before `done`): longer than any activity
may run (host.json's functionTimeout, 5 minutes)."""


class GroupSender:
    """Sends JSON messages to a group through the service SDK (a REST call each; sync, for activities).

    With a connection string the SDK signs each request with the access key (and client tokens itself);
    without one it asks the service with the app's Entra identity (`DefaultAzureCredential`: the managed
    identity in Azure, the user-assigned one named by AZURE_CLIENT_ID), and client tokens come from the
    service's `:generateToken`."""

    def __init__(self, hub: Hub, connection_string: str | None = None) -> None:
        self.hub = hub
        self._connection_string = connection_string
        self._client: WebPubSubServiceClient | None = None
        self._lock = threading.Lock()
        self._options: dict[str, Any] = {}
        if not connection_string and hub.endpoint.startswith("http://") and trusted_url(hub.endpoint):
            self._options["enforce_https"] = False  # a local Web PubSub on loopback: azure-core asks for https

    def _service(self) -> WebPubSubServiceClient:
        with self._lock:
            if self._client is None:
                from azure.messaging.webpubsubservice import WebPubSubServiceClient

                options: dict[str, Any] = {
                    "connection_timeout": SEND_TIMEOUT_SECONDS,
                    "read_timeout": SEND_TIMEOUT_SECONDS,
                    "retry_total": 1,
                }
                if self._connection_string:
                    self._client = WebPubSubServiceClient.from_connection_string(
                        self._connection_string, hub=self.hub.name, **options
                    )
                else:
                    from azure.identity import DefaultAzureCredential

                    credential = DefaultAzureCredential()
                    self._client = WebPubSubServiceClient(self.hub.endpoint, self.hub.name, credential, **options)
            return self._client

    def send(self, group: str, message: dict[str, Any]) -> None:
        self._service().send_to_group(group, message, content_type="application/json", **self._options)

    def client_url(self, user_id: str, group: str, minutes: int) -> str:
        """A client URL whose token names the user, joins the group at connect and may re-join only it."""
        token = self._service().get_client_access_token(
            user_id=user_id,
            roles=[f"webpubsub.joinLeaveGroup.{group}"],
            groups=[group],
            minutes_to_expire=minutes,
            **self._options,
        )
        return str(token["url"])


class Outbox:
    """One group's messages, sent in order by one thread; consecutive deltas waiting merge into one."""

    def __init__(self, send: Callable[[dict[str, Any]], None], name: str) -> None:
        self._send = send
        self._queue: deque[dict[str, Any] | None] = deque()
        self._ready = threading.Condition()
        self._seq = 0
        self._worker = threading.Thread(target=self._run, name=f"web-reply-{name}", daemon=True)
        self._worker.start()

    def put(self, message: dict[str, Any]) -> None:
        with self._ready:
            self._queue.append(message)
            self._ready.notify()

    def close(self, timeout: float = FLUSH_SECONDS) -> None:
        """Send what is queued (waiting up to `timeout`), then stop."""
        with self._ready:
            self._queue.append(None)
            self._ready.notify()
        self._worker.join(timeout)

    def _next(self) -> dict[str, Any] | None:
        with self._ready:
            if not self._ready.wait_for(lambda: bool(self._queue), timeout=IDLE_SECONDS):
                return None
            message = self._queue.popleft()
            if message is None or message["type"] != "reply.delta":
                return message
            text = [message["text"]]
            while self._queue and self._queue[0] is not None and self._queue[0]["type"] == "reply.delta":
                text.append(self._queue.popleft()["text"])  # type: ignore[index]
            self._seq += 1
            return {**message, "seq": self._seq, "text": "".join(text)}

    def _run(self) -> None:
        while (message := self._next()) is not None:
            try:
                self._send(message)
            except Exception as error:  # the turn is stored regardless; the client can read it
                log.warning("a %s was not sent to the web session: %s", message["type"], type(error).__name__)


class WebReplyStream(ReplyStream):
    """The turn's reply stream that also tells the conversation's Web PubSub group, as it is written.

    A client's `interrupt` (a Redis key the event handler sets) stops the reply: the model's next text
    raises `Interrupted`, and deltas and sentences still queued are not sent."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        conversation_id: str,
        turn: int,
        *,
        sender: GroupSender,
        audio: Callable[[str], bytes | None],
        sample_rate: int,
    ) -> None:
        super().__init__(client, prefix, conversation_id, turn)
        self._conversation_id = conversation_id
        self._turn_number = turn
        self._audio = audio
        self._rate = sample_rate
        self._written = ""
        group = group_of(conversation_id)
        self._outbox = Outbox(lambda message: self._deliver(sender, group, message), f"{conversation_id[:8]}-{turn}")

    def text(self, so_far: str) -> None:
        """The reply's text as the model has written it so far: what is new goes out as a delta; an
        interrupted reply raises `Interrupted` instead."""
        super().text(so_far)
        if not so_far.startswith(self._written) or len(so_far) == len(self._written):
            return
        offset, self._written = len(self._written), so_far
        self._outbox.put({"type": "reply.delta", "turn": self._turn_number, "offset": offset, "text": so_far[offset:]})

    def restart(self, reason: str) -> None:
        super().restart(reason)
        self._written = ""
        self._outbox.put({"type": "reply.restart", "turn": self._turn_number})

    def sentence(self, sentence: AnnouncedSentence) -> None:
        super().sentence(sentence)
        self._outbox.put(
            {
                "type": "reply.audio",
                "turn": self._turn_number,
                "index": sentence.index,
                "text": sentence.text,
                "format": "wav",
                "sample_rate": self._rate,
                "duration_seconds": round(sentence.duration_seconds, 3),
                "path": f"/api/conversations/{self._conversation_id}/audio/{self._turn_number}/{sentence.index}",
                "blob": sentence.audio_blob,
            }
        )

    def done(self, turn: dict[str, Any]) -> None:
        super().done(turn)
        played = self.played(now=True)
        if played is None:
            self.text(str(turn.get("reply_text") or ""))
        self._outbox.put(reply_done(turn, interrupted=played is not None))
        self._outbox.close()

    def abandon(self) -> None:
        """The turn failed: stop sending (what is queued still goes)."""
        self._outbox.close(timeout=0)

    def _deliver(self, sender: GroupSender, group: str, message: dict[str, Any]) -> None:
        """Sends one message; a sentence's audio is read here, in the sender's thread, and inlined if it fits."""
        if message["type"] in {"reply.delta", "reply.audio"} and self.played() is not None:
            return  # interrupted: the rest of the reply is not sent
        if message["type"] == "reply.audio":
            blob = message.pop("blob")
            wav = self._audio(blob)
            if wav is not None and len(wav) <= MAX_INLINE_AUDIO_BYTES:
                message["audio"] = base64.b64encode(wav).decode()
        sender.send(group, message)


def reply_done(turn: dict[str, Any], *, interrupted: bool = False) -> dict[str, Any]:
    """`reply.done`: the stored turn's final text (what was heard, if the client interrupted it), what the
    agent does next, and its timings."""
    request_id = str(turn.get("request_id") or "")
    return {
        "type": "reply.done",
        "turn": turn["turn"],
        "id": request_id.removeprefix("key:") if request_id.startswith("key:") else None,
        "transcript": turn.get("user_text"),
        "text": turn.get("reply_text"),
        "action": turn.get("action"),
        "interrupted": interrupted,
        "timings_ms": {
            "stt": turn.get("stt_ms"),
            "agent": turn.get("agent_ms"),
            "tts": turn.get("tts_ms"),
            "first_audio": turn.get("first_audio_ms"),
        },
    }


def tell_ended(sender: GroupSender, conversation_id: str, outcome: str) -> None:
    """`conversation.ended` to the session's group: the client stops listening, and learns why (`failed`
    when a turn could not be answered at all). Said again by a retried finalize; a failed send is logged."""
    try:
        sender.send(group_of(conversation_id), {"type": "conversation.ended", "outcome": outcome})
    except Exception as error:
        log.warning("conversation.ended was not sent to the web session: %s", type(error).__name__)
