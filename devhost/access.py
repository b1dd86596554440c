"""The host's system key on the devhost's own routes, as the Functions host guards its webhooks.

On Azure `/runtime/webhooks/durabletask/*` answers only with the system key (`x-functions-key`
header or `code` query), and the Durable client binding's creation and management URLs carry
`code=<key>` (Durable extension `HttpApiHandler.GetUniversalQueryStrings`; team notes §12). The
devhost asks for a key only when it listens beyond loopback; it generates one per start and writes
it to `<data-dir>/host-key` (mode 0600). The SDK client talks to `rpcBaseUrl`, which on Azure is a
loopback-only listener without a key: the devhost opens one too, and requests arriving on that
socket need no key.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

KEY_FILE = "host-key"
GUARDED_PREFIXES = ("/runtime/webhooks/durabletask", "/devhost")
"""Lower-cased path prefixes served by the devhost itself (not by the app)."""


def is_devhost_path(path: str) -> bool:
    lowered = path.lower()
    return any(lowered == p or lowered.startswith(p + "/") for p in GUARDED_PREFIXES)


def is_loopback(host: str) -> bool:
    """True when binding `host` exposes nothing beyond this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def new_system_key(data_dir: Path) -> str:
    """A fresh key, written to `<data-dir>/host-key` readable by its owner only."""
    key = secrets.token_urlsafe(32)
    write_secret(data_dir / KEY_FILE, key)
    return key


def kept_secret(path: Path) -> str:
    """The secret kept in `path`, made there (256 random bits, owner-only) when missing or too short."""
    if path.exists():
        kept = path.read_text().strip()
        if len(kept) >= 32:
            return kept
    secret = secrets.token_urlsafe(32)
    write_secret(path, secret)
    return secret


def write_secret(path: Path, secret: str) -> None:
    """`secret` and a newline in `path`, readable by its owner only (from the first byte written)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    path.chmod(0o600)  # an older file keeps its old mode through O_CREAT


def _with_code(url: str, key: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}code={key}"


def with_system_key(binding: str, key: str, rpc_base_url: str) -> str:
    """The durableClient binding JSON as the host sends it when a system key exists."""
    data: dict[str, Any] = json.loads(binding)
    for group in ("creationUrls", "managementUrls"):
        data[group] = {name: url if name == "id" else _with_code(url, key) for name, url in data[group].items()}
    data["requiredQueryStringParameters"] = f"code={key}"
    data["rpcBaseUrl"] = rpc_base_url
    return json.dumps(data)


def system_key_middleware(key: str, rpc_port: int) -> Middleware:
    """Refuses the devhost's own routes without the key, except on the loopback RPC socket."""

    @web.middleware
    async def require_key(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if is_devhost_path(request.path) and not _on_rpc_socket(request, rpc_port):
            given = request.headers.get("x-functions-key") or request.query.get("code") or ""
            if not hmac.compare_digest(given.encode(), key.encode()):
                return web.json_response(
                    {"error": {"code": "unauthorized", "message": "This route needs the host key (x-functions-key)."}},
                    status=401,
                )
        return await handler(request)

    return require_key


def _on_rpc_socket(request: web.Request, rpc_port: int) -> bool:
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return isinstance(sockname, tuple) and len(sockname) >= 2 and sockname[1] == rpc_port
