"""The chat model chain against fake Azure OpenAI and OpenAI servers, through the real SDKs on loopback.

`langchain-openai` and `openai` speak HTTP to `tests/fakes/openai_server.py`; the chain's fallbacks,
the SDK's retries and timeouts and the reply parser all run for real.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.documents import Document
from openai import AuthenticationError

from shared.agent.chain import chat_model_for, reply_to
from shared.agent.offline_model import OfflineAgentModel
from shared.config import Settings
from shared.models import AgentProfile, AgentReply, AnsweredReply, Intent
from tests.fakes.openai_server import (
    Answer,
    ContentFilter,
    FakeOpenAIServer,
    FilteredReply,
    RateLimited,
    ServerError,
    Slow,
    Unauthorized,
)
from tests.title_retriever import TitleRetriever

AZURE_KEY = "azure-key-never-logged"
OPENAI_KEY = "openai-key-never-logged"
DEPLOYMENT = "chat-deployment"
QUESTION = "what are your opening hours"
OFFLINE_ANSWER = "8 am to 10 pm"


@pytest.fixture
def azure() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer('{"intent": "question", "text": "Azure answers."}') as server:
        yield server


@pytest.fixture
def openai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer('{"intent": "question", "text": "OpenAI answers."}') as server:
        yield server


def llm_settings(**overrides: Any) -> Settings:
    """Settings with every language-model knob given, so the shell's environment cannot leak in."""
    values: dict[str, Any] = {
        "azure_openai_endpoint": "",
        "azure_openai_api_key": "",
        "azure_openai_api_version": "2024-10-21",
        "azure_openai_chat_deployment": "",
        "openai_api_key": "",
        "openai_base_url": "",
        "openai_model": "fake-model",
        "llm_timeout_seconds": 5.0,
        "llm_max_retries": 0,
    }
    return Settings(**(values | overrides))


def both(azure: FakeOpenAIServer, openai: FakeOpenAIServer, **overrides: Any) -> Settings:
    return llm_settings(
        azure_openai_endpoint=azure.url,
        azure_openai_api_key=AZURE_KEY,
        azure_openai_chat_deployment=DEPLOYMENT,
        openai_api_key=OPENAI_KEY,
        openai_base_url=f"{openai.url}/v1",
        **overrides,
    )


def answer(demo: AgentProfile, settings: Settings, **seam: Any) -> AnsweredReply:
    retriever = TitleRetriever(
        documents=[Document(page_content=k.text, metadata={"title": k.title}) for k in demo.knowledge]
    )
    return reply_to(demo, retriever, QUESTION, [], model=chat_model_for(demo, settings, **seam))


def ask(demo: AgentProfile, settings: Settings, **seam: Any) -> AgentReply:
    return answer(demo, settings, **seam).reply


def test_azure_primary_answers_and_its_api_key_goes_in_the_api_key_header(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    reply = ask(demo, both(azure, openai))

    assert (reply.intent, reply.text) == (Intent.QUESTION, "Azure answers.")
    [sent] = azure.requests
    assert sent.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert sent.query["api-version"] == "2024-10-21"
    assert sent.headers["api-key"] == AZURE_KEY
    assert "Authorization" not in sent.headers
    assert sent.body["messages"][0]["role"] == "system"
    assert QUESTION in sent.body["messages"][-1]["content"]
    assert openai.requests == []


def test_a_real_models_reply_wrapped_in_a_json_code_fence_is_still_parsed(
    demo: AgentProfile, openai: FakeOpenAIServer
) -> None:
    openai.script(Answer('```json\n{"intent": "goodbye", "text": "Bye for now."}\n```'))

    reply = ask(demo, llm_settings(openai_base_url=f"{openai.url}/v1"))

    assert (reply.intent, reply.text) == (Intent.GOODBYE, "Bye for now.")


def test_azure_without_a_key_sends_the_entra_id_bearer_token_from_the_token_provider(
    demo: AgentProfile, azure: FakeOpenAIServer
) -> None:
    settings = llm_settings(azure_openai_endpoint=azure.url, azure_openai_chat_deployment=DEPLOYMENT)

    reply = ask(demo, settings, azure_token_provider=lambda: "entra-token-1")

    assert reply.text == "Azure answers."
    [sent] = azure.requests
    assert sent.headers["Authorization"] == "Bearer entra-token-1"
    assert "api-key" not in sent.headers


def test_primary_rate_limited_past_its_retries_hands_the_turn_to_openai(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    azure.script(RateLimited(retry_after_seconds=1), RateLimited(retry_after_seconds=1))

    reply = ask(demo, both(azure, openai, llm_max_retries=1))

    assert reply.text == "OpenAI answers."
    assert len(azure.requests) == 2, "one call plus one retry after Retry-After, then the fallback"
    [sent] = openai.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "fake-model"
    assert sent.headers["Authorization"] == f"Bearer {OPENAI_KEY}"


def test_once_the_primary_recovers_the_next_turn_is_its_again(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    settings = both(azure, openai)
    azure.script(RateLimited())

    during = ask(demo, settings)
    after = ask(demo, settings)

    assert (during.text, after.text) == ("OpenAI answers.", "Azure answers.")
    assert (len(azure.requests), len(openai.requests)) == (2, 1)


def test_primary_500_and_fallback_timeout_leave_the_offline_model_to_answer(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    azure.script(ServerError())
    openai.script(Slow(seconds=10, content='{"intent": "question", "text": "Too late."}'))

    reply = ask(demo, both(azure, openai, llm_timeout_seconds=0.5))

    assert reply.intent is Intent.QUESTION
    assert OFFLINE_ANSWER in reply.text
    assert len(azure.requests) == 1
    assert len(openai.requests) == 1


def test_content_filter_refusal_on_the_primary_moves_to_openai(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    azure.script(ContentFilter())

    reply = ask(demo, both(azure, openai, llm_max_retries=2))

    assert reply.text == "OpenAI answers."
    assert len(azure.requests) == 1, "a content-filter refusal is not retried"


def test_a_filtered_reply_from_azure_moves_to_openai_and_one_from_openai_to_the_offline_model(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    azure.script(FilteredReply(), FilteredReply())

    assert ask(demo, both(azure, openai)).text == "OpenAI answers."
    openai.script(FilteredReply())
    assert OFFLINE_ANSWER in ask(demo, both(azure, openai)).text
    assert (len(azure.requests), len(openai.requests)) == (2, 2)


def test_a_wrong_key_is_not_hidden_behind_the_fallbacks(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    azure.script(Unauthorized())

    with pytest.raises(AuthenticationError):
        ask(demo, both(azure, openai, llm_max_retries=2))

    assert (len(azure.requests), len(openai.requests)) == (1, 0)


def test_an_openai_compatible_server_without_a_key_is_the_only_provider(
    demo: AgentProfile, openai: FakeOpenAIServer
) -> None:
    reply = ask(demo, llm_settings(openai_base_url=f"{openai.url}/v1"))

    assert reply.text == "OpenAI answers."
    assert len(openai.requests) == 1


def test_a_provider_server_down_is_a_connection_error_and_the_next_one_answers(
    demo: AgentProfile, openai: FakeOpenAIServer
) -> None:
    with FakeOpenAIServer() as gone:
        closed_url = gone.url
    settings = llm_settings(
        azure_openai_endpoint=closed_url,
        azure_openai_api_key=AZURE_KEY,
        azure_openai_chat_deployment=DEPLOYMENT,
        openai_base_url=f"{openai.url}/v1",
    )

    assert ask(demo, settings).text == "OpenAI answers."


def test_nothing_configured_is_exactly_the_offline_model(demo: AgentProfile) -> None:
    model = chat_model_for(demo, llm_settings())

    assert isinstance(model, OfflineAgentModel)
    assert OFFLINE_ANSWER in ask(demo, llm_settings()).text


def test_provider_keys_never_reach_the_logs_even_while_failing_over(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    azure.script(ServerError(), ServerError())
    openai.script(RateLimited(), RateLimited())
    caplog.set_level(logging.DEBUG)

    reply = ask(demo, both(azure, openai, llm_max_retries=1))

    assert OFFLINE_ANSWER in reply.text
    assert caplog.records, "the SDKs log at DEBUG, so this test can see a leak"
    assert AZURE_KEY not in caplog.text
    assert OPENAI_KEY not in caplog.text


def fake_usage(server: FakeOpenAIServer, content: str) -> tuple[int, int]:
    """The token counts the fake reported for its last request: words of the prompt and of the answer."""
    prompt = server.requests[-1].body["messages"]
    return sum(len(m["content"].split()) for m in prompt), len(content.split())


def test_the_turn_answered_by_azure_records_azure_its_model_and_the_token_counts_it_reported(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    content = '{"intent": "question", "text": "Azure answers with usage."}'
    azure.script(Answer(content))

    llm = answer(demo, both(azure, openai)).llm

    input_tokens, output_tokens = fake_usage(azure, content)
    assert input_tokens > 0
    assert (llm.provider, llm.input_tokens, llm.output_tokens) == ("azure_openai", input_tokens, output_tokens)
    assert llm.model == azure.requests[-1].body.get("model", "fake")
    assert llm.cost_usd is None, "a model missing from the price table has no cost, not a zero one"


def test_after_azure_is_rate_limited_the_turn_records_openai_and_the_priced_models_cost(
    demo: AgentProfile, azure: FakeOpenAIServer, openai: FakeOpenAIServer
) -> None:
    content = '{"intent": "question", "text": "OpenAI answers."}'
    azure.script(RateLimited())

    llm = answer(demo, both(azure, openai, openai_model="gpt-4o-mini")).llm

    input_tokens, output_tokens = fake_usage(openai, content)
    assert (llm.provider, llm.model) == ("openai", "gpt-4o-mini")
    assert (llm.input_tokens, llm.output_tokens) == (input_tokens, output_tokens)
    assert llm.cost_usd == pytest.approx((input_tokens * 0.15 + output_tokens * 0.60) / 1_000_000)


def test_with_nothing_configured_the_turn_records_the_offline_model_and_its_word_counts(demo: AgentProfile) -> None:
    answered = answer(demo, llm_settings())

    assert OFFLINE_ANSWER in answered.reply.text
    llm = answered.llm
    assert (llm.provider, llm.model, llm.cost_usd) == ("offline", "offline-agent", 0.0)
    assert llm.input_tokens is not None
    assert llm.input_tokens > len(QUESTION.split()), "the whole prompt counts, not only the question"
    said = json.dumps({"text": answered.reply.text, "intent": str(answered.reply.intent)})
    assert llm.output_tokens == len(said.split())
