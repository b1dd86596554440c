"""A local Azure Web PubSub: what the official SDKs and a browser see of the service, on one port.

- Clients connect to `/client/hubs/{hub}?access_token=<jwt>` (WebSocket, subprotocol
  `json.webpubsub.azure.v1` or `json.reliable.webpubsub.azure.v1`). The token is HS256 with the access
  key, `aud` = `<endpoint>/client/hubs/<hub>`, `exp`, `sub` (user), `role` and `webpubsub.group`, as
  `WebPubSubServiceClient.get_client_access_token` makes it. Before the socket is accepted the hub's
  event handler gets the blocking `connect` event; its answer may set the user, groups and roles, and a
  4xx refuses the client. Then the client gets `{"type":"system","event":"connected",...}` and the
  handler `connected`; when the socket closes, `disconnected`.
- Client frames: `joinGroup`/`leaveGroup` (role `webpubsub.joinLeaveGroup[.<group>]`), `sendToGroup`
  (role `webpubsub.sendToGroup[.<group>]`), `event` (a blocking user event upstream; a 2xx body comes
  back to the client as a server message, a failure drops the connection) and `sequenceAck`; each with
  an `ackId` is acked, a repeated `ackId` is acked `Duplicate` and not delivered again.
- The REST subset the service SDK (azure-messaging-webpubsubservice 1.3.0) calls, each request's
  `Authorization: Bearer` JWT checked (HS256 with the access key, `aud` = the request URL): send to
  all / group / connection / user, add or remove a connection to/from a group, close a connection,
  connection exists, and `:generateToken`.
- Upstream events are CloudEvents in binary mode (`ce-*` headers, `ce-signature` =
  `sha256=hex(HMAC-SHA256(access key, connection id))`), after the abuse-protection `OPTIONS`
  handshake (`WebHook-Request-Origin`; the handler must answer `WebHook-Allowed-Origin`).
- Microsoft Entra, as with local auth off (`Endpoint.entra_tenant`, `Endpoint.upstream_audience`): REST
  calls with an Entra token of the tenant (`WebPubSubServiceClient(endpoint, hub, credential)`, client
  tokens from `:generateToken`), and upstream requests, the handshake included, carrying a token the
  emulator gets with its managed identity (azure-identity) for the event handler's audience.

Facts: /work notes providers.md §1; learn.microsoft.com azure-web-pubsub reference-cloud-events,
reference-json-webpubsub-subprotocol, reference-json-reliable-webpubsub-subprotocol; the SDKs' source.
Not emulated: connection recovery of the reliable protocol (no `reconnectionToken` is issued, so the
client SDK reconnects afresh), connection state (`ce-connectionState`), OData filters, permissions
granted by REST, and Microsoft Entra auth.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
from aiohttp import web
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from shared.errors import ApiError
from shared.security.tokens import TokenValidator

log = logging.getLogger("devhost.webpubsub")

SUBPROTOCOLS = ("json.webpubsub.azure.v1", "json.reliable.webpubsub.azure.v1")
MAX_FRAME_BYTES = 1024 * 1024
"""The service's message limit (1 MB); a larger client frame closes the socket (1009), a larger REST body is a 413."""
UPSTREAM_TIMEOUT_SECONDS = 20.0
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain"
BINARY_TYPE = "application/octet-stream"
ENTRA_AUDIENCE = "https://webpubsub.azure.com"
"""What an Entra token for the service names as `aud` (the service SDK asks for `https://webpubsub.azure.com/.default`)."""


@dataclass(frozen=True)
class Endpoint:
    """The emulator's address and key, as in a connection string `Endpoint=…;AccessKey=…;Version=1.0;`."""

    url: str
    access_key: str
    entra_tenant: str = ""
    """Set: REST calls may instead carry a Microsoft Entra token of this tenant (RS256, `aud`
    `https://webpubsub.azure.com`), as the service takes from an identity with a data-plane role."""
    entra_authority: str = "https://login.microsoftonline.com"
    """Where the tenant's OpenID document and keys are read (AZURE_AUTHORITY_HOST)."""
    upstream_audience: str = ""
    """Set: every upstream request carries `Authorization: Bearer <token>` for this audience, got with the
    emulator's managed identity (azure-identity's ManagedIdentityCredential), as the hub's event handler
    with managed-identity auth sends it."""

    @property
    def connection_string(self) -> str:
        return f"Endpoint={self.url};AccessKey={self.access_key};Version=1.0;"

    @property
    def origin(self) -> str:
        """What `WebHook-Request-Origin` names: the service's host."""
        return urlsplit(self.url).netloc


@dataclass
class Connection:
    id: str
    hub: str
    user_id: str | None
    roles: frozenset[str]
    subprotocol: str | None
    socket: web.WebSocketResponse
    groups: set[str] = field(default_factory=set)
    acked: set[int] = field(default_factory=set)
    sequence: int = 0

    @property
    def reliable(self) -> bool:
        return self.subprotocol == SUBPROTOCOLS[1]

    def may(self, permission: str, group: str) -> bool:
        return permission in self.roles or f"{permission}.{group}" in self.roles

    async def deliver(self, message: dict[str, Any]) -> None:
        if self.reliable and message.get("type") == "message":
            self.sequence += 1
            message = {**message, "sequenceId": self.sequence}
        if not self.socket.closed:
            await self.socket.send_str(json.dumps(message))


def signature(access_key: str, connection_id: str) -> str:
    """`ce-signature` for one key (the service joins one per key with commas)."""
    return "sha256=" + hmac.new(access_key.encode(), connection_id.encode(), hashlib.sha256).hexdigest()


def _payload(content_type: str, body: bytes) -> tuple[str, Any]:
    """A REST or upstream body as the client frame's `dataType` and `data`."""
    kind = content_type.split(";", maxsplit=1)[0].strip().lower()
    if kind == JSON_TYPE:
        return "json", json.loads(body)
    if kind == TEXT_TYPE:
        return "text", body.decode()
    return "binary", base64.b64encode(body).decode()


def _upstream_body(data_type: str, data: Any) -> tuple[str, bytes]:
    """A client `event` frame's data as the upstream request's Content-Type and body."""
    if data_type == "text":
        if not isinstance(data, str):
            raise ValueError("text data must be a string")
        return f"{TEXT_TYPE}; charset=utf-8", data.encode()
    if data_type == "binary":
        if not isinstance(data, str):
            raise ValueError("binary data must be a base64 string")
        return BINARY_TYPE, base64.b64decode(data, validate=True)
    return f"{JSON_TYPE}; charset=utf-8", json.dumps(data).encode()


class Hub:
    """The connections of every hub and the event handler they report to."""

    def __init__(self, endpoint: Endpoint, event_handler_url: str) -> None:
        self.endpoint = endpoint
        self.event_handler_url = event_handler_url
        self.connections: dict[str, Connection] = {}
        self._session: aiohttp.ClientSession | None = None
        self._validated = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.entra = _entra_validator(endpoint)
        self._identity: AsyncTokenCredential | None = None

    async def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=UPSTREAM_TIMEOUT_SECONDS))
        return self._session

    async def close(self) -> None:
        for connection in list(self.connections.values()):
            await connection.socket.close()
        for task in list(self._tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()
        if self._identity is not None:
            await self._identity.close()

    async def upstream_token(self) -> dict[str, str]:
        """`Authorization` for an upstream request when the hub's event handler uses managed-identity auth."""
        if not self.endpoint.upstream_audience:
            return {}
        if self._identity is None:
            from azure.identity.aio import ManagedIdentityCredential

            self._identity = ManagedIdentityCredential()
        token = await self._identity.get_token(f"{self.endpoint.upstream_audience}/.default")
        return {"Authorization": f"Bearer {token.token}"}

    async def authorize(self, request: web.Request) -> dict[str, Any]:
        """A REST request's bearer token, checked as the service checks it: the access key's (HS256, `aud` the
        request URL) or, with `entra_tenant`, an Entra token of that tenant; 401 otherwise."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        if not header.startswith("Bearer ") or not token:
            raise Refused(401, "Unauthorized", "The request has no bearer token.")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError as error:
            raise Refused(401, "Unauthorized", f"The bearer token is not valid: {error}.") from error
        if algorithm == "RS256" and self.entra is not None:
            try:
                return await asyncio.to_thread(self.entra.claims, token)
            except ApiError as error:
                raise Refused(401, "Unauthorized", f"The Entra token is not valid: {error.message}") from error
        audience = f"{self.endpoint.url}{request.path_qs}"
        try:
            return dict(jwt.decode(token, self.endpoint.access_key, algorithms=["HS256"], audience=audience))
        except jwt.InvalidTokenError as error:
            raise Refused(401, "Unauthorized", f"The bearer token is not valid: {error}.") from error

    async def _abuse_protection(self) -> bool:
        """The OPTIONS handshake, once: the handler must allow this service's origin."""
        if self._validated:
            return True
        session = await self.session()
        try:
            headers = {"WebHook-Request-Origin": self.endpoint.origin, **await self.upstream_token()}
            async with session.options(self.event_handler_url, headers=headers) as answer:
                allowed = answer.headers.get("WebHook-Allowed-Origin", "")
                self._validated = answer.status < 300 and allowed in {"*", self.endpoint.origin}
        except (aiohttp.ClientError, ClientAuthenticationError) as error:
            log.warning("event handler %s unreachable: %s", self.event_handler_url, error)
            return False
        if not self._validated:
            log.warning("event handler %s refused the abuse-protection handshake", self.event_handler_url)
        return self._validated

    async def upstream(
        self,
        ce_type: str,
        *,
        event_name: str,
        connection_id: str,
        hub: str,
        user_id: str | None,
        subprotocol: str | None,
        content_type: str,
        body: bytes,
    ) -> tuple[int, str, bytes]:
        """One CloudEvent (binary mode) to the event handler: its status, Content-Type and body (502 when
        it could not be reached, 403 when the handshake failed)."""
        if not await self._abuse_protection():
            return 403, "", b""
        headers = {
            "Content-Type": content_type,
            "WebHook-Request-Origin": self.endpoint.origin,
            "ce-specversion": "1.0",
            "ce-type": ce_type,
            "ce-source": f"/hubs/{hub}/client/{connection_id}",
            "ce-id": uuid.uuid4().hex,
            "ce-time": datetime.now(UTC).isoformat(),
            "ce-signature": signature(self.endpoint.access_key, connection_id),
            "ce-hub": hub,
            "ce-connectionId": connection_id,
            "ce-eventName": event_name,
        }
        if user_id:
            headers["ce-userId"] = user_id
        if subprotocol:
            headers["ce-subprotocol"] = subprotocol
        session = await self.session()
        try:
            headers |= await self.upstream_token()
            async with session.post(self.event_handler_url, data=body, headers=headers) as answer:
                return answer.status, answer.headers.get("Content-Type", ""), await answer.read()
        except (aiohttp.ClientError, TimeoutError, ClientAuthenticationError) as error:
            log.warning("event %s for %s not delivered: %s", event_name, connection_id, error)
            return 502, "", b""

    def later(self, work: Any) -> None:
        """Run a non-blocking event's delivery without waiting for it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def in_hub(self, hub: str) -> list[Connection]:
        return [c for c in self.connections.values() if c.hub == hub]


def _entra_validator(endpoint: Endpoint) -> TokenValidator | None:
    """Entra tokens for the REST API, when the emulator trusts a tenant: v1.0 or v2.0, for the service's audience."""
    if not endpoint.entra_tenant:
        return None
    authority, tenant = endpoint.entra_authority.rstrip("/"), endpoint.entra_tenant
    return TokenValidator(
        f"{authority}/{tenant}/v2.0/.well-known/openid-configuration",
        (ENTRA_AUDIENCE,),
        "tid",
        issuers=(f"https://sts.windows.net/{tenant}/",),
    )


class Refused(Exception):
    """An error answer with the service's JSON body (`code`, `message`)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@web.middleware
async def _refusals(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except Refused as refused:
        return web.json_response({"code": refused.code, "message": refused.message}, status=refused.status)
    return response


def _client_claims(token: str | None, hub: str, endpoint: Endpoint) -> dict[str, Any]:
    if not token:
        raise Refused(401, "Unauthorized", "No access_token.")
    try:
        return dict(
            jwt.decode(token, endpoint.access_key, algorithms=["HS256"], audience=f"{endpoint.url}/client/hubs/{hub}")
        )
    except jwt.InvalidTokenError as error:
        raise Refused(401, "Unauthorized", f"The access token is not valid: {error}.") from error


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def build_app(endpoint: Endpoint, event_handler_url: str) -> web.Application:
    """The emulator's aiohttp app; `event_handler_url` receives every hub's events."""
    hub_state = Hub(endpoint, event_handler_url)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        yield
        await hub_state.close()

    async def client(request: web.Request) -> web.StreamResponse:
        hub = request.match_info["hub"]
        claims = _client_claims(request.query.get("access_token"), hub, endpoint)
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        subprotocol = next((p for p in offered if p in SUBPROTOCOLS), None)
        connection_id = uuid.uuid4().hex
        user_id = claims.get("sub") if isinstance(claims.get("sub"), str) else None
        roles, groups = set(_strings(claims.get("role"))), set(_strings(claims.get("webpubsub.group")))
        connect_body = {
            "claims": {k: v if isinstance(v, list) else [v] for k, v in claims.items()},
            "query": {k: request.query.getall(k) for k in request.query if k != "access_token"},
            "headers": {k: [v] for k, v in request.headers.items() if k.lower() != "authorization"},
            "subprotocols": offered,
            "clientCertificates": [],
        }
        status, content_type, body = await hub_state.upstream(
            "azure.webpubsub.sys.connect",
            event_name="connect",
            connection_id=connection_id,
            hub=hub,
            user_id=user_id,
            subprotocol=None,
            content_type=f"{JSON_TYPE}; charset=utf-8",
            body=json.dumps(connect_body).encode(),
        )
        if status >= 300:
            refused = status if 400 <= status < 500 else 500
            raise Refused(refused, "Unauthorized", "The event handler refused the connection.")
        if status == 200 and body and content_type.startswith(JSON_TYPE):
            answer = json.loads(body)
            user_id = answer.get("userId") or user_id
            groups |= set(_strings(answer.get("groups")))
            roles |= set(_strings(answer.get("roles")))
            subprotocol = answer.get("subprotocol") or subprotocol
        socket = web.WebSocketResponse(protocols=(subprotocol,) if subprotocol else (), max_msg_size=MAX_FRAME_BYTES)
        await socket.prepare(request)
        connection = Connection(connection_id, hub, user_id, frozenset(roles), subprotocol, socket, groups)
        hub_state.connections[connection_id] = connection
        await socket.send_str(
            json.dumps({"type": "system", "event": "connected", "userId": user_id, "connectionId": connection_id})
        )
        hub_state.later(_system(hub_state, connection, "connected", {}))
        reason = ""
        try:
            async for frame in socket:
                if frame.type != aiohttp.WSMsgType.TEXT or not subprotocol:
                    reason = "Only JSON text frames of the json.webpubsub.azure.v1 subprotocols are served here."
                    break
                if not await _client_frame(hub_state, connection, frame.data):
                    reason = "The event handler failed on a user event."
                    break
            if socket.exception() is not None:
                reason = str(socket.exception())
        finally:
            hub_state.connections.pop(connection_id, None)
            if reason and not socket.closed:
                with contextlib.suppress(ConnectionError):
                    await socket.send_str(json.dumps({"type": "system", "event": "disconnected", "message": reason}))
            await socket.close()
            hub_state.later(_system(hub_state, connection, "disconnected", {"reason": reason}))
        return socket

    async def send_to_all(request: web.Request) -> web.Response:
        await hub_state.authorize(request)
        return await _send(request, hub_state.in_hub(request.match_info["hub"]))

    async def send_to_group(request: web.Request) -> web.Response:
        await hub_state.authorize(request)
        group = request.match_info["group"]
        members = [c for c in hub_state.in_hub(request.match_info["hub"]) if group in c.groups]
        return await _send(request, members, group)

    async def send_to_connection(request: web.Request) -> web.Response:
        await hub_state.authorize(request)
        target = hub_state.connections.get(request.match_info["connection_id"])
        return await _send(request, [] if target is None else [target])

    async def send_to_user(request: web.Request) -> web.Response:
        await hub_state.authorize(request)
        user = request.match_info["user_id"]
        return await _send(request, [c for c in hub_state.in_hub(request.match_info["hub"]) if c.user_id == user])

    async def group_membership(request: web.Request) -> web.Response:
        await hub_state.authorize(request)
        target = hub_state.connections.get(request.match_info["connection_id"])
        if request.method == "PUT":
            if target is None:
                raise Refused(404, "NotFound", "No such connection.")
            target.groups.add(request.match_info["group"])
            return web.Response(status=200)
        if target is not None:
            target.groups.discard(request.match_info["group"])
        return web.Response(status=204)

    async def connection(request: web.Request) -> web.Response:
        await hub_state.authorize(request)
        target = hub_state.connections.get(request.match_info["connection_id"])
        if request.method == "HEAD":
            return web.Response(status=200 if target is not None else 404)
        if target is not None:
            reason = request.query.get("reason", "")
            await target.socket.send_str(json.dumps({"type": "system", "event": "disconnected", "message": reason}))
            await target.socket.close()
        return web.Response(status=204)

    async def generate_token(request: web.Request) -> web.Response:
        await hub_state.authorize(request)
        hub = request.match_info["hub"]
        minutes = int(request.query.get("minutesToExpire", "60"))
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "aud": f"{endpoint.url}/client/hubs/{hub}",
            "iat": now,
            "exp": now + timedelta(minutes=minutes),
        }
        if request.query.get("userId"):
            claims["sub"] = request.query["userId"]
        if request.query.getall("role", []):
            claims["role"] = request.query.getall("role")
        if request.query.getall("group", []):
            claims["webpubsub.group"] = request.query.getall("group")
        return web.json_response({"token": jwt.encode(claims, endpoint.access_key, algorithm="HS256")})

    app = web.Application(client_max_size=MAX_FRAME_BYTES, middlewares=[_refusals])
    app.cleanup_ctx.append(lifecycle)
    hubs = "/api/hubs/{hub}"
    app.add_routes(
        [
            web.get("/client/hubs/{hub}", client),
            web.post(hubs + "/:send", send_to_all),
            web.post(hubs + "/groups/{group}/:send", send_to_group),
            web.post(hubs + "/connections/{connection_id}/:send", send_to_connection),
            web.post(hubs + "/users/{user_id}/:send", send_to_user),
            web.put(hubs + "/groups/{group}/connections/{connection_id}", group_membership),
            web.delete(hubs + "/groups/{group}/connections/{connection_id}", group_membership),
            web.delete(hubs + "/connections/{connection_id}", connection),
            web.head(hubs + "/connections/{connection_id}", connection),
            web.post(hubs + "/:generateToken", generate_token),
        ]
    )
    return app


async def _send(request: web.Request, targets: list[Connection], group: str | None = None) -> web.Response:
    """A REST send to each target (202, as the service answers): a group's members get it as a group
    message (`from: group`, no `fromUserId`), anyone else as a server message."""
    body = await request.read()
    try:
        data_type, data = _payload(request.content_type, body)
    except (ValueError, UnicodeDecodeError) as error:
        raise Refused(400, "BadRequest", f"The body does not parse: {error}.") from error
    message: dict[str, Any] = {"type": "message", "from": "server", "dataType": data_type, "data": data}
    if group is not None:
        message |= {"from": "group", "group": group}
    for target in targets:
        with contextlib.suppress(ConnectionError):
            await target.deliver(message)
    return web.Response(status=202)


async def _system(hub: Hub, connection: Connection, event: str, body: dict[str, Any]) -> None:
    await hub.upstream(
        f"azure.webpubsub.sys.{event}",
        event_name=event,
        connection_id=connection.id,
        hub=connection.hub,
        user_id=connection.user_id,
        subprotocol=connection.subprotocol,
        content_type=f"{JSON_TYPE}; charset=utf-8",
        body=json.dumps(body).encode(),
    )


async def _ack(connection: Connection, ack_id: Any, error: tuple[str, str] | None = None) -> None:
    if not isinstance(ack_id, int):
        return
    message: dict[str, Any] = {"type": "ack", "ackId": ack_id, "success": error is None}
    if error is not None:
        message["error"] = {"name": error[0], "message": error[1]}
    await connection.socket.send_str(json.dumps(message))


async def _client_frame(hub: Hub, connection: Connection, text: str) -> bool:
    """One client frame handled; False when the connection must drop (its user event failed upstream)."""
    try:
        frame = json.loads(text)
    except ValueError:
        return True  # the service ignores what it cannot parse
    if not isinstance(frame, dict):
        return True
    kind, ack_id, group = frame.get("type"), frame.get("ackId"), frame.get("group")
    if kind == "sequenceAck":
        return True
    if isinstance(ack_id, int):
        if ack_id in connection.acked:
            await _ack(connection, ack_id, ("Duplicate", "The message with this ackId was already processed."))
            return True
        connection.acked.add(ack_id)
    if kind in {"joinGroup", "leaveGroup", "sendToGroup"}:
        if not isinstance(group, str) or not group:
            await _ack(connection, ack_id, ("InvalidRequest", "The group is missing."))
            return True
        permission = "webpubsub.sendToGroup" if kind == "sendToGroup" else "webpubsub.joinLeaveGroup"
        if not connection.may(permission, group):
            await _ack(connection, ack_id, ("Forbidden", f"The connection has no permission to {kind} {group}."))
            return True
        if kind == "joinGroup":
            connection.groups.add(group)
        elif kind == "leaveGroup":
            connection.groups.discard(group)
        else:
            data_type = str(frame.get("dataType", "json"))
            message: dict[str, Any] = {"type": "message", "from": "group", "group": group, "dataType": data_type}
            message |= {"data": frame.get("data"), "fromUserId": connection.user_id}
            for member in hub.in_hub(connection.hub):
                if group in member.groups and not (frame.get("noEcho") and member is connection):
                    with contextlib.suppress(ConnectionError):
                        await member.deliver(message)
        await _ack(connection, ack_id)
        return True
    if kind == "event" and isinstance(frame.get("event"), str):
        return await _user_event(hub, connection, frame)
    await _ack(connection, ack_id, ("InvalidRequest", "Unknown message type."))
    return True


async def _user_event(hub: Hub, connection: Connection, frame: dict[str, Any]) -> bool:
    """A custom event upstream (blocking); the handler's 2xx body comes back as a server message."""
    ack_id = frame.get("ackId")
    try:
        content_type, body = _upstream_body(str(frame.get("dataType", "json")), frame.get("data"))
    except ValueError as error:
        await _ack(connection, ack_id, ("InvalidRequest", str(error)))
        return True
    event = str(frame["event"])
    status, answer_type, answer = await hub.upstream(
        f"azure.webpubsub.user.{event}",
        event_name=event,
        connection_id=connection.id,
        hub=connection.hub,
        user_id=connection.user_id,
        subprotocol=connection.subprotocol,
        content_type=content_type,
        body=body,
    )
    if status >= 300:
        await _ack(connection, ack_id, ("InternalServerError", f"The event handler answered {status}."))
        return False
    await _ack(connection, ack_id)
    if answer:
        data_type, data = _payload(answer_type or BINARY_TYPE, answer)
        await connection.deliver({"type": "message", "from": "server", "dataType": data_type, "data": data})
    return True
