"""The embeddings model for knowledge chunks and questions: Azure OpenAI, else OpenAI (or a compatible server)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

from shared.config import Settings

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from shared.agent.chain import TokenProvider


def embeddings_for(settings: Settings, azure_token_provider: TokenProvider | None = None) -> Embeddings | None:
    """The configured embeddings model, or None. `azure_token_provider` replaces Entra ID in tests.

    Texts are sent as strings (`check_embedding_ctx_length=False`): the default tokenizes them first
    with tiktoken, which downloads its encodings at run time. Chunks are far below the models'
    input limits (KNOWLEDGE_CHUNK_CHARACTERS is at most 8000).
    """
    if settings.azure_openai_endpoint and settings.azure_openai_embeddings_deployment:
        from langchain_openai import AzureOpenAIEmbeddings

        from shared.agent.chain import _entra_id_token_provider

        api_key = settings.azure_openai_api_key if settings.azure_openai_api_key.get_secret_value() else None
        if api_key is None and azure_token_provider is None:
            azure_token_provider = _entra_id_token_provider()
        return AzureOpenAIEmbeddings(
            azure_endpoint=settings.azure_openai_endpoint,
            azure_deployment=settings.azure_openai_embeddings_deployment,
            api_version=settings.azure_openai_api_version,
            api_key=api_key,
            azure_ad_token_provider=None if api_key else azure_token_provider,
            check_embedding_ctx_length=False,
            max_retries=settings.llm_max_retries,
            timeout=settings.llm_timeout_seconds,
        )
    openai_key = settings.openai_api_key.get_secret_value()
    if openai_key or settings.openai_base_url:
        from langchain_openai import OpenAIEmbeddings

        return OpenAIEmbeddings(
            model=settings.openai_embeddings_model,
            base_url=settings.openai_base_url or None,
            api_key=SecretStr(openai_key or "not-needed"),
            check_embedding_ctx_length=False,
            max_retries=settings.llm_max_retries,
            timeout=settings.llm_timeout_seconds,
        )
    return None


def embeddings_model_name(settings: Settings) -> str:
    """The name stored beside each chunk embedding made by `embeddings_for(settings)`: vectors of
    different models are never compared, and changing the model re-embeds the chunks."""
    if settings.azure_openai_endpoint and settings.azure_openai_embeddings_deployment:
        return f"azure-openai/{settings.azure_openai_embeddings_deployment}"
    return f"openai/{settings.openai_embeddings_model}"
