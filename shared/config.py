"""One Settings object for the whole app: every knob the product reads, documented here.

Values come from environment variables (Azure app settings, `local.settings.json` under Core Tools,
or the shell for `make dev`). Nothing else in the codebase reads the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.security.cors import parse_origins

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
MIN_SIGNING_KEY_BYTES = 32
"""256 bits, as long as the HMAC-SHA256 it keys: a shorter key would be the weakest part."""


class Settings(BaseSettings):
    """Environment-driven configuration; field names map to UPPER_CASE variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = Field(
        default="",
        description="libpq URI of the Postgres database. Empty: `make dev` starts an embedded server.",
    )
    database_entra_auth: bool = Field(
        default=False,
        description="Log in to Postgres with Microsoft Entra tokens (Azure Database for PostgreSQL): DATABASE_URL "
        "names host, database and the role of the identity (no password), and each new connection gets a fresh "
        "token from DefaultAzureCredential (the managed identity named by AZURE_CLIENT_ID) as its password. The "
        "app then never migrates: its identity does not own the schema (the post-provision step migrates).",
    )
    database_pool_max: int = Field(default=10, ge=1, description="Max Postgres connections per worker.")
    redis_url: str = Field(default="", description="Redis URL. Empty: `make dev` starts an embedded redis-server.")
    redis_entra_auth: bool = Field(
        default=False,
        description="Log in to Redis with Microsoft Entra tokens (Azure Managed Redis): the token's object id is "
        "the user, the token the password, renewed on open connections before it expires (redis-entraid). "
        "REDIS_URL then holds no password (`rediss://<host>:10000`).",
    )
    redis_key_prefix: str = Field(
        default="voice:", description="Prefix of every Redis key, so deployments can share a cache."
    )
    blob_connection_string: str = Field(
        default="UseDevelopmentStorage=true",
        description="Storage connection string for audio (Azurite locally). Ignored if BLOB_ACCOUNT_URL is set.",
    )
    blob_account_url: str = Field(
        default="",
        description="https://<account>.blob.core.windows.net: use managed identity instead of a key.",
    )
    audio_container: str = Field(default="audio", description="Blob container holding turn audio.")
    agents_dir: Path = Field(default=REPOSITORY_ROOT / "agents", description="Folder of agent files (`<name>.toml`).")
    default_agent: str = Field(default="demo", description="Agent used when a conversation names none.")
    turn_reply_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=200,
        description="How long a turn request waits for its reply before answering 504 (the turn still completes). "
        "At most 200 s: Azure's front end cuts every HTTP request at 230 s.",
    )
    max_request_bytes: int = Field(default=2_000_000, gt=0, description="Largest accepted request body (413 above).")
    audio_max_seconds: float = Field(
        default=30.0,
        gt=0,
        le=120,
        description="Longest accepted spoken turn (422 above); recognition work grows with it, hence the cap.",
    )
    silence_timeout_seconds: int = Field(
        default=120, gt=0, description="Silence after which the agent re-prompts the caller."
    )
    max_silences: int = Field(default=2, ge=1, description="Re-prompts before the agent hangs up on a silent caller.")
    turns_per_generation: int = Field(
        default=20,
        ge=1,
        description="Turns per orchestration generation before continue-as-new keeps replay short.",
    )
    history_turns: int = Field(default=6, ge=0, description="Previous turns the agent sees as conversation context.")
    aftercall_transcript_characters: int = Field(
        default=24_000,
        ge=1000,
        le=400_000,
        description="Most characters of the call record the after-call model reads to summarise the call and fill "
        "the agent's extraction fields (the latest turns are kept).",
    )
    public_base_url: str = Field(
        default="",
        description="Origin used in audio URLs (e.g. behind a proxy). Empty: the request's own origin.",
    )
    azure_openai_endpoint: str = Field(
        default="",
        description="https://<resource>.openai.azure.com: with AZURE_OPENAI_CHAT_DEPLOYMENT, Azure OpenAI is the "
        "primary chat model.",
    )
    azure_openai_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="Azure OpenAI key. Empty: Microsoft Entra ID (DefaultAzureCredential, e.g. managed identity).",
    )
    azure_openai_api_version: str = Field(default="2024-10-21", description="Azure OpenAI REST api-version.")
    azure_openai_chat_deployment: str = Field(default="", description="Azure OpenAI deployment of the chat model.")
    azure_openai_embeddings_deployment: str = Field(
        default="",
        description="Azure OpenAI deployment of the embeddings model: with AZURE_OPENAI_ENDPOINT, it embeds knowledge "
        "chunks and questions for Azure AI Search, or for pgvector in Postgres.",
    )
    openai_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="OpenAI key. With it or OPENAI_BASE_URL, OpenAI is the fallback chat model.",
    )
    openai_base_url: str = Field(
        default="",
        description="Any OpenAI-compatible server (Ollama, vLLM, llama.cpp), e.g. http://127.0.0.1:11434/v1. "
        "Empty: api.openai.com.",
    )
    openai_model: str = Field(default="gpt-4o-mini", description="Model the OpenAI fallback asks for.")
    openai_embeddings_model: str = Field(
        default="text-embedding-3-small",
        description="OpenAI embeddings model, used for Azure AI Search (or pgvector in Postgres) when no Azure OpenAI "
        "embeddings deployment is configured.",
    )
    llm_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Per-call timeout of each chat model before the next one answers."
    )
    llm_streaming: bool = Field(
        default=True,
        description="Stream the chat model's answer so each sentence is spoken as soon as it is written. False: "
        "the whole answer first (for servers that stream badly).",
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        le=5,
        description="Retries per chat model on 429, 5xx and timeouts (honouring Retry-After) before the next one.",
    )
    knowledge_container: str = Field(
        default="knowledge", description="Blob container holding the source file of every knowledge document."
    )
    knowledge_max_file_bytes: int = Field(
        default=10_000_000, gt=0, le=100_000_000, description="Largest knowledge file accepted, checked before reading."
    )
    knowledge_max_pdf_pages: int = Field(
        default=300, ge=1, le=5000, description="Most pages of a PDF knowledge file, checked before extracting text."
    )
    knowledge_max_characters: int = Field(
        default=2_000_000,
        ge=1,
        le=50_000_000,
        description="Most characters of text one knowledge document may hold once extracted (refused above).",
    )
    knowledge_chunk_characters: int = Field(
        default=1000, ge=100, le=8000, description="Target size of a knowledge chunk, in characters."
    )
    knowledge_chunk_overlap: int = Field(
        default=150,
        ge=0,
        le=2000,
        description="Characters neighbouring chunks share, so a sentence cut at a boundary is found in one of "
        "them. Less than KNOWLEDGE_CHUNK_CHARACTERS.",
    )
    knowledge_passages: int = Field(
        default=2, ge=1, le=20, description="Knowledge chunks retrieved for each caller question."
    )
    azure_search_endpoint: str = Field(
        default="",
        description="https://<service>.search.windows.net: knowledge is indexed in and retrieved from Azure AI Search "
        "(hybrid text + vector). Empty: Postgres full-text search.",
    )
    azure_search_index: str = Field(
        default="knowledge",
        pattern=r"^[a-z0-9][a-z0-9-]{0,127}$",
        description="Azure AI Search index of every agent's knowledge chunks (created by the app).",
    )
    azure_search_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="Azure AI Search admin key. Empty: Microsoft Entra ID (DefaultAzureCredential, e.g. managed "
        "identity).",
    )
    azure_search_max_retries: int = Field(
        default=2, ge=0, le=5, description="Retries of each Azure AI Search call on 429, 5xx and timeouts."
    )
    http_tool_allowed_hosts: str = Field(
        default="",
        description="Comma-separated hosts the agents' HTTP tools may call (`api.example.com`, `*.example.com`). "
        "Empty: HTTP tools are refused.",
    )
    http_tool_allow_private_networks: bool = Field(
        default=False,
        description="Let HTTP tools reach private, loopback and link-local addresses (local testing only).",
    )
    sarvam_api_key: SecretStr = Field(
        default=SecretStr(""),
        description="Sarvam AI subscription key. With it, Sarvam is the primary speech-to-text and text-to-speech "
        "engine (the offline engines answer when it cannot). Empty: Sarvam is not used.",
    )
    sarvam_base_url: str = Field(
        default="https://api.sarvam.ai", description="Sarvam AI REST origin (tests point it at a local fake)."
    )
    sarvam_stt_model: str = Field(default="saaras:v3", description="Sarvam speech-to-text model.")
    sarvam_tts_model: str = Field(
        default="bulbul:v3", description="Sarvam text-to-speech model (bulbul:v2, bulbul:v3 or bulbul:v4-flash)."
    )
    speech_timeout_seconds: float = Field(
        default=8.0,
        gt=0,
        le=60,
        description="Per-request timeout of the cloud speech engine before the offline engine answers.",
    )

    auth_oidc_config_url: str = Field(
        default="",
        description="OpenID discovery document of the sign-in provider (Entra External ID or Azure AD B2C), e.g. "
        "https://<tenant>.ciamlogin.com/<tenant-id>/v2.0/.well-known/openid-configuration: the token issuer and "
        "its keys come from it. Empty: bearer tokens are refused.",
    )
    auth_audience: str = Field(
        default="",
        description="Comma-separated audiences a bearer token must carry one of: the API's application (client) "
        "id and/or its App ID URI (api://...).",
    )
    auth_tenant_claim: str = Field(
        default="extension_tenant",
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="Token claim naming the person's tenant in this product (a custom attribute, e.g. "
        "extension_<app-id>_tenant in External ID, or tid where each Entra tenant is one of ours).",
    )
    auth_leeway_seconds: int = Field(
        default=60, ge=0, le=300, description="Clock skew allowed when checking a token's exp and nbf."
    )
    auth_jwks_cache_seconds: int = Field(
        default=3600,
        ge=60,
        le=86_400,
        description="How long the provider's signing keys are cached before they are fetched again.",
    )
    auth_jwks_refresh_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Least time between two fetches of the signing keys caused by tokens naming an unknown key "
        "id, so forged key ids cannot make every request fetch.",
    )
    auth_http_timeout_seconds: float = Field(
        default=5.0, gt=0, le=30, description="Timeout of each request to the sign-in provider (discovery, keys)."
    )

    rate_limit_per_key: str = Field(
        default="600/minute",
        description="Requests one API key may make, in the `limits` notation (`600/minute`, "
        "`100/minute;10/second`). Empty: no limit per key.",
    )
    rate_limit_per_tenant: str = Field(
        default="3000/minute",
        description="Requests all of one tenant's callers may make together (same notation). Empty: no limit "
        "per tenant.",
    )
    rate_limit_per_ip: str = Field(
        default="1200/minute",
        description="Requests one client address (an IPv6 /64) may make, checked before authentication (same "
        "notation). Empty: no limit per address.",
    )
    rate_limit_per_webhook_ip: str = Field(
        default="6000/minute",
        description="Phone provider webhooks (Twilio, Vonage, the Amazon Connect bridge) one sending address (an "
        "IPv6 /64) may make, checked "
        "before the signature, apart from the API's per-address limit (same notation). Providers send from a "
        "pool of addresses, so this stops a flood from one, never a busy account's calls (a call makes a few "
        "webhooks a turn). Empty: no limit.",
    )
    trusted_proxy_hops: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Proxies that append the client's address to X-Forwarded-For, counted from the app: 1 is "
        "Azure's own front end; 2 with Azure Front Door or Application Gateway in front of it.",
    )
    allowed_origins: str = Field(
        default="",
        description="Comma-separated browser origins that may call the API (`https://app.example.com`, "
        "`http://localhost:5173`): scheme, host and port only; `*` is refused. Empty: no cross-origin calls.",
    )
    audio_url_signing_key: SecretStr = Field(
        default=SecretStr(""),
        description="Secret (at least 32 bytes; in Azure a Key Vault reference) that signs the short-lived audio "
        "URLs handed to browsers and phone providers. Empty: no audio URL can be signed.",
    )
    audio_url_signing_key_previous: SecretStr = Field(
        default=SecretStr(""),
        description="The signing key before the current one: URLs it signed still verify until they expire, so "
        "the key can be rotated without breaking calls in progress. Empty after a rotation has settled.",
    )
    audio_url_ttl_seconds: int = Field(
        default=900, ge=30, le=3600, description="How long a signed audio URL stays valid."
    )
    twilio_account_sid: str = Field(
        default="",
        pattern=r"^(AC[0-9a-f]{32})?$",
        description="The Twilio account (AC…) whose numbers call in: a webhook naming another account is "
        "refused (403). Empty: the signature alone decides.",
    )
    twilio_auth_token: SecretStr = Field(
        default=SecretStr(""),
        description="The Twilio account's auth token: it checks the signature of every Twilio webhook (in Azure a "
        "Key Vault reference). Empty: the Twilio routes answer 503. `make dev` makes a local one.",
    )
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com",
        pattern=r"^https?://[^/?#\s]+$",
        description="Origin of Twilio's REST API, which places outbound calls (tests point it at a local fake).",
    )
    outbound_calls_per_minute: int = Field(
        default=10,
        ge=0,
        le=10_000,
        description="Outbound calls (`POST /api/calls`) one tenant may place per minute, on top of the per-key and "
        "per-tenant request limits (429 above). 0: no limit of its own.",
    )
    outbound_ringing_seconds: int = Field(
        default=60,
        ge=5,
        le=600,
        description="How long an outbound call rings before the provider gives up (`no_answer`).",
    )
    outbound_answer_wait_seconds: int = Field(
        default=180,
        ge=5,
        le=3600,
        description="How long an outbound call's conversation waits for the answer (machine detection included) or "
        "the provider's end-of-call status before it ends `no_answer` itself (a status lost on the way). At least "
        "OUTBOUND_RINGING_SECONDS.",
    )
    vonage_application_id: str = Field(
        default="",
        pattern=r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$",
        description="The Vonage application whose numbers call in: a webhook signed for another application "
        "(`application_id`) is refused (403). Empty: the signature alone decides.",
    )
    vonage_private_key: SecretStr = Field(
        default=SecretStr(""),
        description="The Vonage application's private key, as PEM text (`-----BEGIN PRIVATE KEY-----…`; in Azure a "
        "Key Vault reference): it signs the application JWT (RS256) that places outbound calls. Empty, or no "
        "VONAGE_APPLICATION_ID: Vonage places no calls (503).",
    )
    vonage_api_host: str = Field(
        default="api.nexmo.com",
        pattern=r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description="Host of the Vonage Voice API, which places outbound calls (a regional one such as "
        "`api-eu.vonage.com`; tests point it at a local fake).",
    )
    vonage_signature_secret: SecretStr = Field(
        default=SecretStr(""),
        description="The Vonage account's signature secret: it checks the signed JWT on every Vonage webhook (in "
        "Azure a Key Vault reference). Empty: the Vonage routes answer 503. `make dev` makes a local one.",
    )
    connect_bridge_secret: SecretStr = Field(
        default=SecretStr(""),
        description="The secret the Amazon Connect bridge Lambda (integrations/amazon-connect/) signs every "
        "request with (HMAC-SHA256; in Azure a Key Vault reference, and the Lambda's own environment). Empty: "
        "the Connect route answers 503. `make dev` makes a local one.",
    )
    web_pubsub_connection_string: SecretStr = Field(
        default=SecretStr(""),
        description="Azure Web PubSub connection string (`Endpoint=https://<name>.webpubsub.azure.com;AccessKey=...;"
        "Version=1.0;`, in Azure a Key Vault reference): browser and app sessions connect through it, and its key "
        "checks the hub's signed events. Empty: the realtime routes answer 503. `make dev` runs a local Web PubSub "
        "and sets it.",
    )
    web_pubsub_hub: str = Field(
        default="voice",
        pattern=r"^[A-Za-z][A-Za-z0-9_`,.\[\]]{0,127}$",
        description="The Web PubSub hub of the realtime sessions; its event handler is `/api/realtime/events`.",
    )
    web_pubsub_endpoint: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description="https://<name>.webpubsub.azure.com: Azure Web PubSub reached with the app's identity (Entra ID; "
        "local auth off) instead of WEB_PUBSUB_CONNECTION_STRING.",
    )
    web_pubsub_upstream_audience: str = Field(
        default="",
        description="Audience of the token Web PubSub sends with each event (the hub's upstream auth, "
        "bicep/modules/webpubsub.bicep): the events route accepts only tokens for it.",
    )
    web_pubsub_upstream_principal_id: str = Field(
        default="",
        description="Object id of the Web PubSub service's own managed identity: the events route accepts only "
        "tokens it was issued.",
    )
    azure_tenant_id: str = Field(
        default="",
        description="The Microsoft Entra tenant whose tokens the app accepts from Azure services (Web PubSub "
        "events); Bicep sets it.",
    )
    azure_authority_host: str = Field(
        default="https://login.microsoftonline.com",
        pattern=r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$",
        description="The Microsoft Entra sign-in host (azure-identity's own setting; another cloud's, e.g. "
        "login.microsoftonline.us): AZURE_TENANT_ID's keys and issuer are read from its OpenID document. Tests "
        "point it at a local fake.",
    )
    realtime_token_minutes: int = Field(
        default=5,
        ge=1,
        le=60,
        description="Lifetime of the client URL `POST /api/realtime/negotiate` returns: enough to connect; a client "
        "that reconnects later negotiates again.",
    )
    realtime_disconnect_grace_seconds: int = Field(
        default=30,
        ge=1,
        le=3600,
        description="How long a realtime session outlives its client's last connection: past it the conversation "
        "ends `disconnected`; a client that reconnects (negotiate with its conversation_id) within it goes on.",
    )
    phone_reply_deadline_seconds: float = Field(
        default=8.0,
        ge=1,
        le=12,
        description="How long a phone webhook waits for the agent's reply before it answers a short filler and "
        "has the provider come back for the same reply: well inside Twilio's 15 s limit per webhook.",
    )
    phone_fallback_agent: str = Field(
        default="",
        max_length=64,
        description="An agent of the demo tenant that answers calls to numbers no tenant holds (`make dev` sets "
        "the default agent, so any number reaches the demo locally). Empty: such a call hears that the "
        "number is not in service, and hangs up.",
    )

    applicationinsights_connection_string: SecretStr = Field(
        default=SecretStr(""),
        description="Application Insights connection string: traces, metrics and logs go to Azure Monitor "
        "(azure-monitor-opentelemetry). Empty: nothing is sent there.",
    )
    otel_exporter_otlp_endpoint: str = Field(
        default="",
        pattern=r"^(https?://\S+)?$",
        description="OTLP/HTTP collector origin (e.g. http://127.0.0.1:4318): traces, metrics and logs are sent "
        "to <endpoint>/v1/traces, /v1/metrics and /v1/logs (OTEL_EXPORTER_OTLP_HEADERS adds headers). Empty: no "
        "OTLP export.",
    )
    otel_service_name: str = Field(
        default="voice-agent-orchestrator",
        min_length=1,
        max_length=100,
        description="The service name every span and metric carries (`service.name`, App Insights' cloud role).",
    )
    telemetry_store_spans: bool = Field(
        default=False,
        description="Postgres, Redis and Blob calls as spans of the turn's trace, when spans are exported. Off by "
        "default: with an exporter they cost about 8-11 ms of a turn's ~50 ms overhead (bench), well over the 5 % "
        "budget; turn them on to see where a slow turn's time went.",
    )
    operator_tenant: str = Field(
        default="",
        max_length=64,
        pattern=r"^([a-z0-9][a-z0-9-]{0,62})?$",
        description="The tenant that runs the deployment: its principals with `metrics:read` read `/api/metrics`, "
        "whose figures cover every tenant; any other tenant's are refused (403 `operator_only`). Empty: nobody "
        "reads them (`make dev` sets the demo tenant).",
    )

    @field_validator("rate_limit_per_key", "rate_limit_per_tenant", "rate_limit_per_ip", "rate_limit_per_webhook_ip")
    @classmethod
    def _rate_limits_parse(cls, value: str) -> str:
        if value.strip() and any(item.amount < 1 for item in parse_many(value)):
            raise ValueError("a rate limit must allow at least one request")
        return value

    @field_validator("vonage_private_key")
    @classmethod
    def _private_key_is_pem(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and "-----BEGIN" not in value.get_secret_value():
            raise ValueError("VONAGE_PRIVATE_KEY must be the PEM text of the key (-----BEGIN PRIVATE KEY-----…)")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins_parse(cls, value: str) -> str:
        parse_origins(value)
        return value

    @field_validator("audio_url_signing_key", "audio_url_signing_key_previous")
    @classmethod
    def _signing_keys_long_enough(cls, value: SecretStr) -> SecretStr:
        if 0 < len(value.get_secret_value().encode()) < MIN_SIGNING_KEY_BYTES:
            raise ValueError(f"an audio URL signing key needs at least {MIN_SIGNING_KEY_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _signing_keys_agree(self) -> Settings:
        if self.audio_url_signing_key_previous.get_secret_value() and not self.audio_url_signing_key.get_secret_value():
            raise ValueError("AUDIO_URL_SIGNING_KEY_PREVIOUS needs AUDIO_URL_SIGNING_KEY, the key that signs now")
        return self

    @model_validator(mode="after")
    def _upstream_auth_names_its_tenant(self) -> Settings:
        if self.web_pubsub_upstream_audience and not self.azure_tenant_id:
            raise ValueError("WEB_PUBSUB_UPSTREAM_AUDIENCE needs AZURE_TENANT_ID, the tenant that issues its tokens")
        if (
            self.web_pubsub_endpoint
            and not self.web_pubsub_connection_string.get_secret_value()
            and not self.web_pubsub_upstream_audience
        ):
            raise ValueError(
                "WEB_PUBSUB_ENDPOINT without an access key needs WEB_PUBSUB_UPSTREAM_AUDIENCE: with no key to check "
                "ce-signature, the hub's events can only be checked by their Entra token"
            )
        if self.web_pubsub_upstream_audience and not self.web_pubsub_upstream_principal_id.strip():
            raise ValueError(
                "WEB_PUBSUB_UPSTREAM_AUDIENCE needs WEB_PUBSUB_UPSTREAM_PRINCIPAL_ID: any identity of the tenant "
                "may get a token for an Azure service's audience, so only the service's own identity is let in"
            )
        return self

    @model_validator(mode="after")
    def _outbound_waits_agree(self) -> Settings:
        if self.outbound_answer_wait_seconds < self.outbound_ringing_seconds:
            raise ValueError("OUTBOUND_ANSWER_WAIT_SECONDS must be at least OUTBOUND_RINGING_SECONDS")
        return self

    @model_validator(mode="after")
    def _knowledge_settings_agree(self) -> Settings:
        if self.knowledge_chunk_overlap >= self.knowledge_chunk_characters:
            raise ValueError("KNOWLEDGE_CHUNK_OVERLAP must be less than KNOWLEDGE_CHUNK_CHARACTERS")
        if self.azure_search_endpoint and not self.has_embeddings:
            raise ValueError(
                "AZURE_SEARCH_ENDPOINT needs an embeddings model: AZURE_OPENAI_ENDPOINT with "
                "AZURE_OPENAI_EMBEDDINGS_DEPLOYMENT, or OPENAI_API_KEY / OPENAI_BASE_URL"
            )
        return self

    @property
    def has_embeddings(self) -> bool:
        azure = bool(self.azure_openai_endpoint and self.azure_openai_embeddings_deployment)
        return azure or bool(self.openai_api_key.get_secret_value() or self.openai_base_url)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
