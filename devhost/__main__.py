"""`python -m devhost`: the local Functions host with its stand-ins, on http://127.0.0.1:7071.

Starts an embedded Postgres, Redis and Azurite for every setting that is not provided, applies
migrations, syncs the agent files, then serves the function app until Ctrl-C, and stops what it
started.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import ExitStack
from pathlib import Path

from aiohttp import web
from pydantic import ValidationError

from devhost import access, hostjson, registry, standins, webpubsub
from devhost.demo_key import ensure_demo_key
from devhost.faults import Faults
from devhost.http_triggers import HttpLimits
from devhost.server import HostOptions, build_app
from devhost.worker_index import AppRefused
from shared.agent.catalog import AgentFileError, load_agents
from shared.config import REPOSITORY_ROOT, Settings
from shared.realtime.upstream import authority
from shared.tenancy import DEMO_TENANT, tenant_scope

log = logging.getLogger("devhost")

DEVHOST_MIGRATIONS = Path(__file__).resolve().parent / "migrations"
AUDIO_URL_KEY_FILE = "audio-url-key"
TWILIO_TOKEN_FILE = "twilio-auth-token"
VONAGE_SECRET_FILE = "vonage-signature-secret"
CONNECT_SECRET_FILE = "connect-bridge-secret"
WEB_PUBSUB_KEY_FILE = "webpubsub-access-key"
EVENT_HANDLER_PATH = "/api/realtime/events"

TRY_IT = """
  Ready on {base}. Every route but health needs the demo tenant's API key, kept in {key_file}:
    KEY=$(cat {key_file})
    curl -s {base}/api/health
    curl -s -X POST {base}/api/conversations -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \\
         -d '{{"agent": "demo"}}'
    curl -s -X POST {base}/api/conversations/<id>/turns -H "X-API-Key: $KEY" -H 'Content-Type: application/json' \\
         -d '{{"text": "what are your opening hours"}}'
    curl -s -X POST {base}/api/conversations/<id>/turns -H "X-API-Key: $KEY" -H 'Content-Type: audio/wav' \\
         --data-binary @question.wav
    curl -s {base}/api/conversations/<id> -H "X-API-Key: $KEY"
    curl -s -X POST {base}/api/conversations/<id>/end -H "X-API-Key: $KEY"
  Talk to an agent in the browser: {base}/web/ (paste the key; the microphone needs a browser on this machine).
  Ctrl-C stops the host and the stand-ins it started.
"""


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("DEVHOST_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEVHOST_PORT", "7071")))
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("DEVHOST_DATA_DIR", REPOSITORY_ROOT / ".devhost"))
    )
    parser.add_argument(
        "--script-root",
        type=Path,
        default=REPOSITORY_ROOT,
        help="the function app folder (function_app.py, host.json), as `func start --script-root`",
    )
    parser.add_argument(
        "--webpubsub-port",
        type=int,
        default=int(os.environ.get("DEVHOST_WEBPUBSUB_PORT", "7072")),
        help="where the local Web PubSub listens (unless WEB_PUBSUB_CONNECTION_STRING names another service)",
    )
    return parser.parse_args()


def _provide_standins(data_dir: Path, stack: ExitStack) -> None:
    """Fill in DATABASE_URL, REDIS_URL and BLOB_CONNECTION_STRING with embedded servers when unset."""
    wanted: dict[str, Callable[[], standins.Standin]] = {
        "DATABASE_URL": lambda: standins.start_postgres(data_dir),
        "REDIS_URL": lambda: standins.start_redis(data_dir),
        "BLOB_CONNECTION_STRING": lambda: standins.start_azurite(data_dir),
    }
    for variable, start in wanted.items():
        if os.environ.get(variable):
            log.info("%s: using the configured service", variable)
            continue
        standin = start()
        standin.adopt()  # left behind by a crashed run of ours: Ctrl-C stops it as well
        stack.callback(standin.stop)
        os.environ[variable] = standin.url


def _provide_secrets(data_dir: Path) -> None:
    """A signing key for audio links when none is configured, kept across runs (links stay valid), and a
    local Twilio auth token, Vonage signature secret and Connect bridge secret the phone simulators sign
    with, printed when made. TWILIO_AUTH_TOKEN, VONAGE_SIGNATURE_SECRET or CONNECT_BRIDGE_SECRET set to
    empty keeps that provider's routes unconfigured (they answer 503). Locally the demo tenant is the
    operator (OPERATOR_TENANT), so its owner's key reads /api/metrics."""
    if not os.environ.get("AUDIO_URL_SIGNING_KEY"):
        os.environ["AUDIO_URL_SIGNING_KEY"] = access.kept_secret(data_dir / AUDIO_URL_KEY_FILE)
    if "PHONE_FALLBACK_AGENT" not in os.environ:  # any number reaches the demo agent locally
        os.environ["PHONE_FALLBACK_AGENT"] = os.environ.get("DEFAULT_AGENT", "demo")
    if "OPERATOR_TENANT" not in os.environ:  # the local operator is the demo tenant's owner
        os.environ["OPERATOR_TENANT"] = DEMO_TENANT
    _provide_local_secret("TWILIO_AUTH_TOKEN", data_dir / TWILIO_TOKEN_FILE, "Twilio auth token")
    _provide_local_secret("VONAGE_SIGNATURE_SECRET", data_dir / VONAGE_SECRET_FILE, "Vonage signature secret")
    _provide_local_secret("CONNECT_BRIDGE_SECRET", data_dir / CONNECT_SECRET_FILE, "Amazon Connect bridge secret")


def _provide_local_secret(variable: str, kept_in: Path, what: str) -> None:
    """`variable` from its file (made, and printed once, the first time) unless it is set, even empty."""
    if variable in os.environ:
        return
    made = not kept_in.exists()
    os.environ[variable] = access.kept_secret(kept_in)
    if made:
        print(f"  A local {what}: {os.environ[variable]}\n  (kept in {kept_in})", file=sys.stderr)


def _provide_webpubsub(data_dir: Path, host: str, port: int) -> webpubsub.Endpoint | None:
    """The local Web PubSub's endpoint and key (kept across runs), set as WEB_PUBSUB_CONNECTION_STRING, its hub
    configured as the Bicep configures Azure's: with WEB_PUBSUB_UPSTREAM_AUDIENCE its events carry an Entra
    token (got with the managed identity azure-identity finds), and Entra tokens of AZURE_TENANT_ID are
    taken on its REST API;
    None when that setting is given (even empty: realtime stays unconfigured), so the app talks to Azure
    or Microsoft's own emulator instead."""
    if "WEB_PUBSUB_CONNECTION_STRING" in os.environ:
        return None
    settings = Settings()
    endpoint = webpubsub.Endpoint(
        _base_url(host, port),
        access.kept_secret(data_dir / WEB_PUBSUB_KEY_FILE),
        entra_tenant=settings.azure_tenant_id,
        entra_authority=authority(settings),
        upstream_audience=settings.web_pubsub_upstream_audience,
    )
    os.environ["WEB_PUBSUB_CONNECTION_STRING"] = endpoint.connection_string
    return endpoint


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is fine
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _host_options(args: argparse.Namespace, stack: ExitStack) -> tuple[HostOptions, list[socket.socket]]:
    """host.json's limits; beyond loopback a system key and the loopback RPC socket the SDK client uses."""
    host_json = args.script_root / "host.json"
    limits = HttpLimits(hostjson.function_timeout_seconds(host_json), hostjson.HTTP_RESPONSE_LIMIT_SECONDS)
    prefix = hostjson.route_prefix(host_json)
    if access.is_loopback(args.host):
        return HostOptions(route_prefix=prefix, limits=limits), []
    rpc = stack.enter_context(socket.socket())
    rpc.bind(("127.0.0.1", 0))
    key = access.new_system_key(args.data_dir)
    log.warning(
        "listening beyond loopback: the devhost's own routes need the host key (x-functions-key), in %s",
        args.data_dir / access.KEY_FILE,
    )
    return HostOptions(route_prefix=prefix, limits=limits, system_key=key, rpc_port=rpc.getsockname()[1]), [rpc]


def _settings_problems() -> list[str]:
    """Each bad setting as `NAME=value: what is wrong. What the setting is for.`, checked before any work."""
    try:
        Settings()
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = str(item["loc"][0])
            field = Settings.model_fields.get(name)
            why = f" {field.description}" if field and field.description else ""
            problems.append(f"  {name.upper()}={item['input']!r}: {item['msg']}.{why}")
        return problems
    return []


def _base_url(host: str, port: int) -> str:
    """Where the app's Durable client reaches this devhost (a wildcard bind is reached on loopback)."""
    reachable = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{reachable}]:{port}" if ":" in reachable else f"http://{reachable}:{port}"


def _serve_webpubsub(
    endpoint: webpubsub.Endpoint, event_handler_url: str, host: str, port: int
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The local Web PubSub, served beside the function app in the same event loop."""

    async def serve(_: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(webpubsub.build_app(endpoint, event_handler_url), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        yield
        await runner.cleanup()

    return serve


def main() -> int:
    args = _parse_args()
    args.script_root = args.script_root.resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    problems = _settings_problems()
    if problems:
        log.error("refusing to start, settings out of bounds:\n%s", "\n".join(problems))
        return 1
    try:
        agents = load_agents(Settings().agents_dir)
    except AgentFileError as error:
        log.error("refusing to start, an agent file is not valid:\n  %s", error)
        return 1
    log.info("agents: %s", ", ".join(a.name for a in agents) or "none")
    try:
        app_registry = registry.load(args.script_root)
    except AppRefused as error:
        log.error("refusing to start: the Python worker does not load this app:\n%s", error)
        return 1
    local_webpubsub = "WEB_PUBSUB_CONNECTION_STRING" not in os.environ
    for port in (args.port, args.webpubsub_port) if local_webpubsub else (args.port,):
        if not _port_is_free(args.host, port):
            log.error("%s:%d is in use: is another devhost running? (stop it, or pass --port)", args.host, port)
            return 1
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        _provide_standins(args.data_dir, stack)
        _provide_secrets(args.data_dir)
        pubsub = _provide_webpubsub(args.data_dir, args.host, args.webpubsub_port)
        from shared.services import services
        from shared.storage.migrations import apply_migrations

        database_url = os.environ["DATABASE_URL"]
        log.info("devhost migrations: %d applied", apply_migrations(database_url, DEVHOST_MIGRATIONS))
        _ = services().knowledge  # migrates and syncs the agent files before the first request
        with tenant_scope(DEMO_TENANT):
            demo_key = ensure_demo_key(args.data_dir, services().api_keys)
        if demo_key.created:
            print(f"  A new API key for the demo tenant: {demo_key.key}\n  (kept in {demo_key.path})", file=sys.stderr)

        base = _base_url(args.host, args.port)
        faults = Faults.from_env(os.environ)
        if faults:
            log.warning("faults injected on purpose: %s", faults)
        options, sockets = _host_options(args, stack)
        app = build_app(app_registry, database_url, base, faults, options)
        log.info(
            "%d HTTP functions, %d orchestrators, %d activities (indexed by the Python worker)",
            len(app_registry.http),
            len(app_registry.orchestrators),
            len(app_registry.activities),
        )

        async def announce(_: web.Application) -> None:
            print(TRY_IT.format(base=base, key_file=demo_key.path), file=sys.stderr, flush=True)

        app.on_startup.append(announce)
        if pubsub is not None:
            app.cleanup_ctx.append(_serve_webpubsub(pubsub, base + EVENT_HANDLER_PATH, args.host, args.webpubsub_port))
            log.info("Web PubSub (local) on %s, events to %s%s", pubsub.url, base, EVENT_HANDLER_PATH)
        web.run_app(app, host=args.host, port=args.port, sock=sockets or None, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
