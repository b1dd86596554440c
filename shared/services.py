"""The process's long-lived clients, built once from Settings on first use.

Functions and activities ask for `services()`; nothing else opens pools or connections. The first
use applies pending migrations (under yoyo's lock, so concurrent workers are safe) and syncs the
agent files into Postgres (a no-op when unchanged), so the same package brings its schema and its
agents to Azure, to Core Tools and to the devhost. With DATABASE_ENTRA_AUTH the app's identity does not own
the schema, so it never migrates: the post-provision step (`scripts/postprovision.py`) does, as the owner.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import redis
import redis.asyncio as aioredis

from shared import telemetry
from shared.agent.catalog import load_agents
from shared.agent.retriever import AzureSearchRetriever, PostgresHybridRetriever, PostgresKnowledgeRetriever
from shared.config import Settings, get_settings
from shared.knowledge.library import KnowledgeLibrary
from shared.security.api_keys import ApiKeys
from shared.security.cors import CorsPolicy
from shared.security.egress import EgressPolicy
from shared.security.rate_limits import RateLimiter
from shared.security.signed_urls import AudioUrlSigner
from shared.security.tokens import TokenValidator
from shared.speech.espeak import EspeakSynthesizer
from shared.speech.fallback import OFFLINE, Choice, FallbackSpeechToText, FallbackTextToSpeech
from shared.speech.offline import OfflineSpeechToText, OfflineTextToSpeech
from shared.speech.pocketsphinx import PocketsphinxRecognizer
from shared.speech.ports import SpeechToText, TextToSpeech
from shared.speech.sarvam import ENGINE as SARVAM
from shared.speech.sarvam import SarvamConnection, SarvamSpeechToText, SarvamTextToSpeech
from shared.storage.agents import AgentRepository
from shared.storage.api_keys import ApiKeyRepository
from shared.storage.blobs import BlobStore, blob_service
from shared.storage.callbacks import CallbackRepository
from shared.storage.conversations import ConversationRepository
from shared.storage.entra import async_redis_client, redis_client
from shared.storage.handoff import ReplyPublisher, ReplyWaiter
from shared.storage.knowledge import KnowledgeRepository
from shared.storage.migrations import apply_migrations
from shared.storage.postgres import Pool, open_pool
from shared.storage.reply_stream import ReplyStreamReader
from shared.storage.tenants import TenantRepository
from shared.storage.webhook_tokens import WebhookTokens
from shared.tenancy import DEMO_TENANT, tenant_scope

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever

    from shared.knowledge.azure_search import AzureSearchIndex
    from shared.knowledge.vectors import ChunkVectors
    from shared.realtime.replies import GroupSender
    from shared.realtime.upstream import UpstreamAuth

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings

    @cached_property
    def pool(self) -> Pool:
        if not self.settings.database_url:
            raise RuntimeError("DATABASE_URL is not set (make dev and the devhost set it for you)")
        if not self.settings.database_entra_auth:
            apply_migrations(self.settings.database_url)
        return open_pool(
            self.settings.database_url, self.settings.database_pool_max, entra_auth=self.settings.database_entra_auth
        )

    @cached_property
    def redis(self) -> redis.Redis:
        client = redis_client(self._redis_url(), entra_auth=self.settings.redis_entra_auth)
        telemetry.instrument_redis(client)
        return client

    @cached_property
    def conversations(self) -> ConversationRepository:
        return ConversationRepository(self.pool)

    @cached_property
    def api_keys(self) -> ApiKeys:
        return ApiKeys(ApiKeyRepository(self.pool))

    @cached_property
    def tenants(self) -> TenantRepository:
        return TenantRepository(self.pool)

    @cached_property
    def tokens(self) -> TokenValidator:
        """Bearer tokens; without AUTH_OIDC_CONFIG_URL every token is refused as not configured."""
        return TokenValidator.from_settings(self.settings)

    @cached_property
    def rate_limits(self) -> RateLimiter:
        """One per process: its Redis connections belong to the event loop that first uses them."""
        return RateLimiter.from_settings(self.settings)

    @cached_property
    def cors(self) -> CorsPolicy:
        return CorsPolicy.from_setting(self.settings.allowed_origins)

    @cached_property
    def audio_urls(self) -> AudioUrlSigner | None:
        """Signs audio links when AUDIO_URL_SIGNING_KEY is set; without it, audio needs the caller's credentials."""
        if not self.settings.audio_url_signing_key.get_secret_value():
            return None
        return AudioUrlSigner.from_settings(self.settings)

    @cached_property
    def callbacks(self) -> CallbackRepository:
        return CallbackRepository(self.pool)

    @cached_property
    def egress(self) -> EgressPolicy:
        return EgressPolicy.from_setting(
            self.settings.http_tool_allowed_hosts, self.settings.http_tool_allow_private_networks
        )

    @cached_property
    def knowledge(self) -> KnowledgeRepository:
        """The repository, once every agent file (and the knowledge files it names) is synced into it and
        the search index or the chunk embeddings have caught up (failures only logged)."""
        repository = KnowledgeRepository(self.pool)
        with tenant_scope(DEMO_TENANT):  # the agent files in AGENTS_DIR are the demo tenant's agents
            library = self._library(repository)
            for profile in load_agents(self.settings.agents_dir):
                if repository.upsert_agent(profile):
                    log.info("agent %s synced from its file", profile.name)
                library.sync_agent_file(profile, self.settings.agents_dir)
                try:
                    library.index_pending(profile.name)
                except Exception:
                    # The index catches up on a later start; until then turns fall back to full-text search.
                    log.exception("agent %s: knowledge not uploaded to Azure AI Search", profile.name)
                try:
                    library.embed_pending(profile.name)
                except Exception:
                    # As above: chunks without an embedding are found by full-text search until a later start.
                    log.exception("agent %s: knowledge chunks not embedded", profile.name)
        return repository

    @cached_property
    def agents(self) -> AgentRepository:
        """The admin API's agents, once the agent files are synced: an API agent never takes a file's name first."""
        self.knowledge  # noqa: B018 (the sync runs on first use)
        return AgentRepository(self.pool)

    @cached_property
    def library(self) -> KnowledgeLibrary:
        return self._library(self.knowledge)

    @cached_property
    def knowledge_sources(self) -> BlobStore:
        service = blob_service(self.settings.blob_connection_string, self.settings.blob_account_url)
        return BlobStore(service, self.settings.knowledge_container)

    @cached_property
    def search_index(self) -> AzureSearchIndex | None:
        if not self.settings.azure_search_endpoint:
            return None
        from shared.knowledge.azure_search import AzureSearchIndex

        return AzureSearchIndex.from_settings(self.settings)

    @cached_property
    def embeddings(self) -> Embeddings | None:
        from shared.knowledge.embeddings import embeddings_for

        return embeddings_for(self.settings)

    @cached_property
    def chunk_vectors(self) -> ChunkVectors | None:
        """Chunk embeddings kept in Postgres: with an embeddings model, without Azure AI Search (which keeps
        its own), where the database has pgvector (migration 0009 added the column)."""
        if self.settings.azure_search_endpoint or not self.settings.has_embeddings:
            return None
        from shared.knowledge.embeddings import embeddings_model_name
        from shared.knowledge.vectors import ChunkVectors

        repository = KnowledgeRepository(self.pool)
        model = embeddings_model_name(self.settings)
        if not repository.has_vectors():
            log.info("knowledge: the database has no pgvector, so %s is not used; full-text search only", model)
            return None
        embeddings = self.embeddings
        assert embeddings is not None  # has_embeddings is embeddings_for's own condition
        log.info("knowledge: full-text search and pgvector nearest neighbours by %s", model)
        return ChunkVectors(repository, embeddings, model)

    def retriever(self, agent: str) -> BaseRetriever:
        """Azure AI Search (hybrid) when AZURE_SEARCH_ENDPOINT is set; else Postgres full-text search, fused
        with pgvector nearest neighbours when an embeddings model is configured and the database has pgvector."""
        local = PostgresKnowledgeRetriever(
            repository=self.knowledge, agent=agent, limit=self.settings.knowledge_passages
        )
        if self.search_index is not None and self.embeddings is not None:
            return AzureSearchRetriever(
                index=self.search_index,
                embeddings=self.embeddings,
                repository=self.knowledge,
                agent=agent,
                limit=self.settings.knowledge_passages,
                fallback=local,
            )
        if self.chunk_vectors is not None:
            return PostgresHybridRetriever(
                repository=self.knowledge,
                vectors=self.chunk_vectors,
                agent=agent,
                limit=self.settings.knowledge_passages,
            )
        return local

    def _library(self, repository: KnowledgeRepository) -> KnowledgeLibrary:
        index = self.search_index
        return KnowledgeLibrary(
            repository,
            self.knowledge_sources,
            self.settings,
            index,
            self.embeddings if index else None,
            None if index else self.chunk_vectors,
        )

    @cached_property
    def audio(self) -> BlobStore:
        service = blob_service(self.settings.blob_connection_string, self.settings.blob_account_url)
        return BlobStore(service, self.settings.audio_container)

    @cached_property
    def publisher(self) -> ReplyPublisher:
        return ReplyPublisher(self.redis, self.settings.redis_key_prefix)

    @cached_property
    def realtime(self) -> GroupSender | None:
        """Web PubSub, by WEB_PUBSUB_CONNECTION_STRING (its access key), else by WEB_PUBSUB_ENDPOINT and the app's
        Entra identity; None when neither is set (its SDK loads on first use, not here)."""
        from shared.realtime.protocol import Hub
        from shared.realtime.replies import GroupSender

        connection_string = self.settings.web_pubsub_connection_string.get_secret_value()
        if connection_string:
            return GroupSender(
                Hub.from_connection_string(connection_string, self.settings.web_pubsub_hub), connection_string
            )
        if self.settings.web_pubsub_endpoint:
            return GroupSender(Hub.from_endpoint(self.settings.web_pubsub_endpoint, self.settings.web_pubsub_hub))
        return None

    @cached_property
    def upstream_auth(self) -> UpstreamAuth | None:
        """The hub's events checked by their Entra token, when WEB_PUBSUB_UPSTREAM_AUDIENCE is set."""
        from shared.realtime.upstream import UpstreamAuth

        return UpstreamAuth.from_settings(self.settings)

    @cached_property
    def sarvam(self) -> SarvamConnection | None:
        """Sarvam AI, when SARVAM_API_KEY is set (its SDK loads on the first request, not here)."""
        key = self.settings.sarvam_api_key.get_secret_value()
        if not key:
            return None
        return SarvamConnection(key, self.settings.sarvam_base_url, self.settings.speech_timeout_seconds)

    @cached_property
    def stt(self) -> SpeechToText:
        """Sarvam first when configured, then PocketSphinx (offline, English)."""
        chain: list[Choice[SpeechToText]] = []
        if self.sarvam is not None:
            chain.append(Choice(SARVAM, SarvamSpeechToText(self.sarvam, self.settings.sarvam_stt_model)))
        chain.append(Choice(OFFLINE, OfflineSpeechToText(PocketsphinxRecognizer())))
        return FallbackSpeechToText(chain)

    @cached_property
    def tts(self) -> TextToSpeech:
        """Sarvam first when configured, then eSpeak NG (offline, with Indian voices)."""
        chain: list[Choice[TextToSpeech]] = []
        if self.sarvam is not None:
            chain.append(Choice(SARVAM, SarvamTextToSpeech(self.sarvam, self.settings.sarvam_tts_model)))
        chain.append(Choice(OFFLINE, OfflineTextToSpeech(EspeakSynthesizer())))
        return FallbackTextToSpeech(chain)

    @cached_property
    def async_redis(self) -> aioredis.Redis:
        """Async: used by HTTP functions, which all run on the worker's one event loop."""
        client = async_redis_client(self._redis_url(), entra_auth=self.settings.redis_entra_auth)
        telemetry.instrument_redis(client)
        return client

    @cached_property
    def waiter(self) -> ReplyWaiter:
        return ReplyWaiter(self.async_redis, self.settings.redis_key_prefix)

    @cached_property
    def webhook_tokens(self) -> WebhookTokens:
        """Signed webhook tokens seen lately (a replayed Vonage token is refused)."""
        return WebhookTokens(self.async_redis, self.settings.redis_key_prefix)

    @cached_property
    def reply_streams(self) -> ReplyStreamReader:
        """Replies sentence by sentence as they are spoken, for channels that play them as they come."""
        return ReplyStreamReader(self.async_redis, self.settings.redis_key_prefix)

    def _redis_url(self) -> str:
        if not self.settings.redis_url:
            raise RuntimeError("REDIS_URL is not set (make dev and the devhost set it for you)")
        return self.settings.redis_url


_lock = threading.Lock()


@functools.cache
def _build() -> Services:
    return Services(get_settings())


def services() -> Services:
    """The process-wide services (built under a lock: activities run in a thread pool)."""
    with _lock:
        return _build()
