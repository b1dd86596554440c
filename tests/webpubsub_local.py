"""The devhost's local Web PubSub on loopback for tests, with a small event handler that records what the
hub delivers upstream (answering `connect` with a `lobby` group and the user event `echo` with its data)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from aiohttp import web
from azure.messaging.webpubsubclient import WebPubSubClient, WebPubSubClientCredential
from azure.messaging.webpubsubclient.models import WebPubSubProtocolType
from azure.messaging.webpubsubservice import WebPubSubServiceClient

from devhost import webpubsub
from devhost.process import free_port

HUB = "voice"
KEY = "a-local-access-key-for-the-emulator-tests-0123456789"


@dataclass
class Handler:
    """The app's side of the hub: answers the handshake and records each event's headers and body."""

    events: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    refuse_connect: bool = False

    def app(self) -> web.Application:
        async def options(request: web.Request) -> web.Response:
            origin = request.headers.get("WebHook-Request-Origin", "")
            self.origins.append(origin)
            return web.Response(headers={"WebHook-Allowed-Origin": origin})

        async def event(request: web.Request) -> web.Response:
            self.events.append((dict(request.headers), await request.read()))
            kind = request.headers["ce-type"]
            if kind == "azure.webpubsub.sys.connect":
                if self.refuse_connect:
                    return web.json_response({"code": "unauthorized"}, status=401)
                return web.json_response({"groups": ["lobby"]})
            if kind == "azure.webpubsub.user.echo":
                return web.json_response({"echoed": json.loads(await request.read())})
            return web.Response(status=204)

        app = web.Application()
        app.add_routes([web.options("/events", options), web.post("/events", event)])
        return app


@dataclass
class Emulator:
    endpoint: webpubsub.Endpoint
    handler: Handler

    def service(self, key: str = KEY) -> WebPubSubServiceClient:
        connection = webpubsub.Endpoint(self.endpoint.url, key).connection_string
        return WebPubSubServiceClient.from_connection_string(connection, hub=HUB)

    def client(self, url: str) -> WebPubSubClient:
        """The official client, without retries; short waits because the SDK waits for an ack (and for
        `open`) without checking whether it came already, so an answer faster than its wait begins
        costs the whole timeout (the outcome is right either way)."""
        return WebPubSubClient(
            credential=WebPubSubClientCredential(url),
            protocol_type=WebPubSubProtocolType.JSON,
            reconnect_retry_total=0,
            message_retry_total=0,
            start_timeout=2,
            ack_timeout=1,
        )


@contextmanager
def local_webpubsub(**options: str) -> Iterator[Emulator]:
    """The emulator and its handler, each on a free port, served from a thread of their own; `options` are
    the emulator's `Endpoint` fields beyond its address and key (its Entra trust)."""
    port, handler_port = free_port(), free_port()
    endpoint = webpubsub.Endpoint(f"http://127.0.0.1:{port}", KEY, **options)
    handler = Handler()
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    ready = threading.Event()

    async def start() -> None:
        runners.append(web.AppRunner(webpubsub.build_app(endpoint, f"http://127.0.0.1:{handler_port}/events")))
        runners.append(web.AppRunner(handler.app()))
        for runner, at in zip(runners, (port, handler_port), strict=True):
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", at).start()
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield Emulator(endpoint, handler)

    async def stop() -> None:
        for runner in runners:
            await runner.cleanup()

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
