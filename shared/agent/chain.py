"""The agent chain: retrieve -> prompt -> chat model -> parsed reply.

Callers get an `AgentReply`; which chat model answers is decided here and nowhere else: Azure OpenAI,
then OpenAI (or any OpenAI-compatible server), then the offline model, each only when configured. Whatever
the model says, the caller hears something: output that is not a reply with words in it becomes the
agent's fallback line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from langchain_core.documents import Document
from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, BaseMessageChunk
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda, RunnablePassthrough
from langchain_core.utils.json import parse_json_markdown, parse_partial_json
from pydantic import SecretStr, StringConstraints

from shared import telemetry
from shared.agent.offline_model import OfflineAgentModel
from shared.agent.pricing import estimated_cost_usd
from shared.agent.prompt import PROMPT, format_knowledge, history_messages, intents_of, memory_messages
from shared.agent.tools import ToolBox, ToolSpec
from shared.config import Settings
from shared.models import (
    AgentProfile,
    AgentReply,
    AnsweredReply,
    Citation,
    Intent,
    ModelUsage,
    TurnAction,
    TurnRecord,
)

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

log = logging.getLogger(__name__)

ChatModel = Runnable[LanguageModelInput, BaseMessage]
T = TypeVar("T", int, float)
M = TypeVar("M", bound=BaseMessage)
OnText = Callable[[str], None]
"""Hears a streamed reply's text so far, each time it grows."""
TokenProvider = Callable[[], str]
"""Returns a current Microsoft Entra ID bearer token; called by the SDK before each request."""

MAX_TOOL_ROUNDS = 3
"""Model calls that may ask for tools in one turn before it must answer: each costs the caller a round trip."""
AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"
AZURE_OPENAI_PROVIDER = "azure_openai"
OPENAI_PROVIDER = "openai"


class ContentFiltered(Exception):
    """A provider refused the prompt or its own reply under its content policy; the next model may answer."""


class SpokenReply(AgentReply):
    """A reply with words to speak: blank text fails parsing, as malformed output does; its intent is
    checked against the agent's list after parsing."""

    intent: Annotated[str, StringConstraints(max_length=100)]
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def chat_model_for(
    profile: AgentProfile,
    settings: Settings,
    azure_token_provider: TokenProvider | None = None,
    tools: Sequence[ToolSpec] = (),
) -> ChatModel:
    """Azure OpenAI, then OpenAI, then the offline model: each configured provider, in that order, each
    able to call `tools`.

    A rate limit, server error, timeout, connection error or content-filter refusal moves on to the next;
    each provider first retries on its own (`LLM_MAX_RETRIES`, honouring Retry-After). With nothing
    configured this is the offline model alone. `azure_token_provider` replaces Entra ID in tests.
    """
    offline = _with_tools(OfflineAgentModel(agent=profile), tools)
    providers = [
        *_azure_openai(profile, settings, azure_token_provider, tools),
        *_openai(profile, settings, tools),
    ]
    if not providers:
        return offline
    from openai import APIConnectionError, InternalServerError, RateLimitError

    primary, *fallbacks = providers
    return primary.with_fallbacks(
        [*fallbacks, offline],
        exceptions_to_handle=(RateLimitError, InternalServerError, APIConnectionError, ContentFiltered),
    )


def _with_tools(model: BaseChatModel, tools: Sequence[ToolSpec]) -> ChatModel:
    return model.bind_tools(list(tools)) if tools else model


def _azure_openai(
    profile: AgentProfile, settings: Settings, token_provider: TokenProvider | None, tools: Sequence[ToolSpec]
) -> list[ChatModel]:
    if not (settings.azure_openai_endpoint and settings.azure_openai_chat_deployment):
        return []
    from langchain_openai import AzureChatOpenAI

    api_key = settings.azure_openai_api_key if settings.azure_openai_api_key.get_secret_value() else None
    if api_key is None and token_provider is None:
        token_provider = _entra_id_token_provider()
    model = AzureChatOpenAI(
        azure_endpoint=settings.azure_openai_endpoint,
        azure_deployment=settings.azure_openai_chat_deployment,
        api_version=settings.azure_openai_api_version,
        api_key=api_key,
        azure_ad_token=None,
        azure_ad_token_provider=None if api_key else token_provider,
        max_retries=settings.llm_max_retries,
        timeout=settings.llm_timeout_seconds,
        temperature=profile.model.temperature,
        max_completion_tokens=profile.model.max_tokens,
        stream_usage=True,
    )
    return [_provider(AZURE_OPENAI_PROVIDER, _with_tools(model, tools), settings.azure_openai_chat_deployment)]


@lru_cache(maxsize=1)
def _entra_id_token_provider() -> TokenProvider:
    """One credential per process: it caches its token and refreshes it before expiry."""
    from azure.identity import DefaultAzureCredential, get_bearer_token_provider

    return get_bearer_token_provider(DefaultAzureCredential(), AZURE_OPENAI_SCOPE)


def _openai(profile: AgentProfile, settings: Settings, tools: Sequence[ToolSpec]) -> list[ChatModel]:
    api_key = settings.openai_api_key.get_secret_value()
    if not (api_key or settings.openai_base_url):
        return []
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(
        model=settings.openai_model,
        base_url=settings.openai_base_url or None,
        # Local OpenAI-compatible servers ignore the key, but the SDK insists on one.
        api_key=SecretStr(api_key or "not-needed"),
        max_retries=settings.llm_max_retries,
        timeout=settings.llm_timeout_seconds,
        temperature=profile.model.temperature,
        max_completion_tokens=profile.model.max_tokens,
        stream_usage=True,
    )
    return [_provider(OPENAI_PROVIDER, _with_tools(model, tools), settings.openai_model)]


class _Provider(Runnable[LanguageModelInput, BaseMessage]):
    """One provider's model: its messages stamped with the provider's name, and content-filter refusals
    raised as `ContentFiltered`, whether it is invoked or streamed.

    Behind `with_fallbacks` only the message can say who answered, and `langchain-openai` stamps
    "openai" on Azure's messages too. Azure refuses a flagged prompt with HTTP 400 `content_filter`; a
    filtered reply comes back as `finish_reason: content_filter`, which `AzureChatOpenAI` raises as a
    ValueError and `ChatOpenAI` returns as a message with that finish reason.
    """

    def __init__(self, name: str, model: ChatModel, model_name: str) -> None:
        self.provider = name
        self.model = model
        self.model_name = model_name

    def get_name(self, suffix: str | None = None, *, name: str | None = None) -> str:
        return self.model.get_name(suffix, name=name)

    def invoke(self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any) -> BaseMessage:
        with telemetry.model_call(self.provider, self.model_name) as call:
            with self._refusals():
                message = self._checked(self.model.invoke(input, config, **kwargs))
            _answered(call, message)
        return message

    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any | None
    ) -> Iterator[BaseMessage]:
        with telemetry.model_call(self.provider, self.model_name) as call, self._refusals():
            for chunk in self.model.stream(input, config, **kwargs):
                call.first_chunk()
                checked = self._checked(chunk)
                _answered(call, checked)
                yield checked

    @contextmanager
    def _refusals(self) -> Iterator[None]:
        from openai import BadRequestError

        try:
            yield
        except BadRequestError as error:
            if error.code == "content_filter":
                raise ContentFiltered(f"{self.get_name()}: the prompt was filtered") from error
            raise
        except ValueError as error:
            if "content filter" in str(error):
                raise ContentFiltered(f"{self.get_name()}: the reply was filtered") from error
            raise

    def _checked(self, message: M) -> M:
        if message.response_metadata.get("finish_reason") == "content_filter":
            raise ContentFiltered(f"{self.get_name()}: the reply was filtered")
        return message.model_copy(
            update={"response_metadata": message.response_metadata | {"model_provider": self.provider}}
        )


def _provider(name: str, model: ChatModel, model_name: str) -> ChatModel:
    return _Provider(name, model, model_name)


def _answered(call: telemetry.ModelCall, message: BaseMessage) -> None:
    """What a message (or a streamed chunk carrying them) says of the call: model, usage, finish reason."""
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    metadata = message.response_metadata
    if usage or "finish_reason" in metadata or "model_name" in metadata:
        call.answered(
            metadata.get("model_name"),
            usage["input_tokens"] if usage else None,
            usage["output_tokens"] if usage else None,
            metadata.get("finish_reason"),
        )


def reply_parser(profile: AgentProfile) -> Runnable[BaseMessage | str, AgentReply]:
    """Model output -> AgentReply; output that is no usable reply becomes the agent's not-understood line."""

    def fallback(_: BaseMessage | str) -> AgentReply:
        log.warning("agent %s: the model's output is no usable reply; saying the fallback line", profile.name)
        return AgentReply(intent=Intent.NOT_UNDERSTOOD, text=profile.not_understood)

    known = set(profile.intent_names())

    def on_the_list(reply: SpokenReply) -> AgentReply:
        """A reply naming an intent the agent does not have is no usable reply either."""
        if reply.intent not in known:
            raise OutputParserException(f"intent {reply.intent!r} is not one of the agent's")
        return AgentReply(intent=reply.intent, text=reply.text, cites=reply.cites)

    parsed = PydanticOutputParser(pydantic_object=SpokenReply) | RunnableLambda(on_the_list)
    return parsed.with_fallbacks([RunnableLambda(fallback)], exceptions_to_handle=(OutputParserException,))


def usage_of(message: BaseMessage) -> ModelUsage:
    """Who answered with this message, its token counts and estimated cost, as the provider reported them."""
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    model_name = message.response_metadata.get("model_name")
    input_tokens = usage["input_tokens"] if usage else None
    output_tokens = usage["output_tokens"] if usage else None
    return ModelUsage(
        provider=message.response_metadata.get("model_provider", "unknown"),
        model=model_name,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=estimated_cost_usd(model_name, input_tokens, output_tokens),
    )


def total_usage(usages: list[ModelUsage]) -> ModelUsage:
    """One turn's usage over its model calls: who answered last, tokens and cost added up (None if any is)."""
    last = usages[-1]

    def added(values: list[T | None]) -> T | None:
        known = [v for v in values if v is not None]
        return sum(known[1:], known[0]) if len(known) == len(values) else None

    return last.model_copy(
        update={
            "input_tokens": added([u.input_tokens for u in usages]),
            "output_tokens": added([u.output_tokens for u in usages]),
            "cost_usd": added([u.cost_usd for u in usages]),
        }
    )


def reply_text_so_far(message: BaseMessage) -> str | None:
    """The "text" of a JSON reply that is still being written, as far as it has come (None before it starts)."""
    try:
        partial = parse_json_markdown(message.text, parser=parse_partial_json)
    except ValueError:
        return None
    text = partial.get("text") if isinstance(partial, dict) else None
    return text if isinstance(text, str) else None


def _streamed(model: ChatModel, messages: list[BaseMessage], config: RunnableConfig, on_text: OnText) -> BaseMessage:
    """The model's message, streamed: `on_text` hears the reply's text as it grows.

    Chunks are added up as LangChain adds them, except their metadata: the first value of each key is
    kept (adding would join the strings, "gpt-4ogpt-4o"), the finish reason is the last. A failure
    after the first chunk cannot move to a fallback inside the stream; the whole chain is asked
    again without streaming (its answer replaces what was streamed).
    """
    from openai import APIConnectionError, APITimeoutError, InternalServerError, RateLimitError

    message: BaseMessage | None = None
    metadata: dict[str, Any] = {}
    try:
        for chunk in model.stream(messages, config):
            for key, value in chunk.response_metadata.items():
                metadata.setdefault(key, value)
            if "finish_reason" in chunk.response_metadata:
                metadata["finish_reason"] = chunk.response_metadata["finish_reason"]
            message = message + chunk if isinstance(message, BaseMessageChunk) else chunk
            text = reply_text_so_far(message)
            if text:
                on_text(text)
    except (RateLimitError, InternalServerError, APIConnectionError, APITimeoutError, ContentFiltered) as error:
        log.warning("the model failed while streaming (%s); asking the chain again", type(error).__name__)
        return model.invoke(messages, config)
    if message is None:
        return model.invoke(messages, config)
    return message.model_copy(update={"response_metadata": metadata})


def citations(cites: list[str], documents: list[Document]) -> list[Citation]:
    """The chunks a reply cites, among those its model was shown (an id it was not shown is dropped)."""
    shown = {str(d.metadata["chunk_id"]): d for d in documents if d.metadata.get("chunk_id")}
    cited = [shown[chunk_id] for chunk_id in dict.fromkeys(cites) if chunk_id in shown]
    return [
        Citation(
            chunk_id=str(d.metadata["chunk_id"]),
            document_id=d.metadata.get("document_id"),
            title=str(d.metadata.get("title", "")),
            source=d.metadata.get("source"),
        )
        for d in cited
    ]


def build_chain(
    profile: AgentProfile,
    retriever: BaseRetriever,
    model: ChatModel,
    toolbox: ToolBox | None = None,
    *,
    on_text: OnText | None = None,
    language: str | None = None,
) -> Runnable[dict[str, object], AnsweredReply]:
    """The runnable that turns {"utterance", "history", "memory"} into this agent's reply, its model usage
    and what its tools did.

    The model sees the knowledge retrieval found for the utterance; when it calls tools, they run and
    it is asked again with their answers, up to MAX_TOOL_ROUNDS times. `model` must have been given
    `toolbox.specs()` (see `chat_model_for`). With `on_text`, the model's answers are streamed and
    `on_text` hears the reply's text as it grows (see `shared/spoken_reply.py`). `language` is the one to
    answer in (the agent's when None).
    """
    prompt = (
        RunnablePassthrough.assign(
            display_name=lambda _: profile.display_name,
            language=lambda _: language or profile.language,
            instructions=lambda _: profile.instructions,
            intents=lambda _: intents_of(profile),
        )
        | PROMPT
    )
    parser = reply_parser(profile)

    def converse(inputs: dict[str, object], config: RunnableConfig) -> AnsweredReply:
        documents = retriever.invoke(str(inputs["utterance"]), config)
        messages = prompt.invoke(inputs | {"knowledge": format_knowledge(documents)}, config).to_messages()
        usages = []
        for _ in range(MAX_TOOL_ROUNDS + 1):
            message = model.invoke(messages, config) if on_text is None else _streamed(model, messages, config, on_text)
            usages.append(usage_of(message))
            requested = message.tool_calls if isinstance(message, AIMessage) else []
            if not requested or toolbox is None or len(usages) > MAX_TOOL_ROUNDS:
                break
            messages += [message, *toolbox.run(requested)]
        reply = parser.invoke(message, config)
        return AnsweredReply(
            reply=reply,
            llm=total_usage(usages),
            tool_calls=toolbox.calls if toolbox else [],
            action=toolbox.action if toolbox else TurnAction.CONTINUE,
            transfer_to=toolbox.transfer_to if toolbox else None,
            citations=citations(reply.cites, [*documents, *(toolbox.found if toolbox else [])]),
        )

    return RunnableLambda(converse, name="agent")


def reply_to(
    profile: AgentProfile,
    retriever: BaseRetriever,
    utterance: str,
    history: list[TurnRecord],
    summary: str = "",
    *,
    model: ChatModel | None = None,
    toolbox: ToolBox | None = None,
    on_text: OnText | None = None,
    language: str | None = None,
) -> AnsweredReply:
    """The agent's reply to one utterance, given recent turns and a summary of what came before, the
    usage of the model that answered, and what its tools did.

    `model` is the chain from `chat_model_for` (given `toolbox.specs()` when there is a toolbox); without
    one the offline model answers, with the toolbox's tools.
    """
    if model is None:
        model = _with_tools(OfflineAgentModel(agent=profile), toolbox.specs() if toolbox else ())
    chain = build_chain(profile, retriever, model, toolbox, on_text=on_text, language=language)
    return chain.invoke(
        {"utterance": utterance, "history": history_messages(history), "memory": memory_messages(summary)}
    )
