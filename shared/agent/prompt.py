"""The agent's prompt: persona, retrieved knowledge, reply format, history and the utterance.

Knowledge passages sit between fixed markers so that any model, including the offline one, can
find them; the reply format is JSON so the intent comes back with the text.
"""

from __future__ import annotations

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from shared.models import Intent, TurnRecord

KNOWLEDGE_START = "<knowledge>"
KNOWLEDGE_END = "</knowledge>"
PASSAGE_TITLE = "### "

SYSTEM = f"""You are {{display_name}}, a voice assistant on a phone call. Answer in {{language}}.
Keep replies short: one or two spoken sentences, no lists, no markdown.
Answer questions only from the knowledge below; if it does not cover the question, say so.
Classify the caller's intent as one of: {", ".join(i.value for i in Intent)}.
Reply with a JSON object {{{{"intent": "<intent>", "text": "<what you say>"}}}} and nothing else.
Earlier in this call: {{summary}}
{KNOWLEDGE_START}
{{knowledge}}
{KNOWLEDGE_END}"""

PROMPT = ChatPromptTemplate.from_messages(
    [("system", SYSTEM), MessagesPlaceholder("history"), ("human", "{utterance}")]
)


def format_knowledge(documents: list[Document]) -> str:
    return "\n".join(f"{PASSAGE_TITLE}{d.metadata.get('title', '')}\n{d.page_content}" for d in documents)


def parse_knowledge(system_text: str) -> list[tuple[str, str]]:
    """(title, text) passages from a system message built with this prompt."""
    start = system_text.find(KNOWLEDGE_START)
    end = system_text.find(KNOWLEDGE_END)
    if start < 0 or end < 0:
        return []
    block = system_text[start + len(KNOWLEDGE_START) : end]
    passages = []
    for chunk in block.split(PASSAGE_TITLE)[1:]:
        title, _, text = chunk.partition("\n")
        passages.append((title.strip(), text.strip()))
    return passages


def history_messages(turns: list[TurnRecord]) -> list[BaseMessage]:
    """Earlier turns as chat messages: what the caller said, then what the agent answered."""
    messages: list[BaseMessage] = []
    for turn in turns:
        if turn.user_text:
            messages.append(HumanMessage(turn.user_text))
        messages.append(AIMessage(turn.reply_text))
    return messages
