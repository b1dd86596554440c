"""What the chat model was actually sent: a LangChain callback that records every prompt's messages.

Registered through LangChain's configure hook, so it sees the model calls of any chain run inside
`recording_chat_model_inputs()`, including those deep inside an activity, without touching its code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, SystemMessage
from langchain_core.tracers.context import register_configure_hook


class ChatModelInputs(BaseCallbackHandler):
    """Every message list a chat model was called with, in call order."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        self.prompts.extend(messages)

    def system_texts(self) -> list[str]:
        return [m.text for prompt in self.prompts for m in prompt if isinstance(m, SystemMessage)]


_recorder: ContextVar[ChatModelInputs | None] = ContextVar("chat_model_inputs", default=None)
register_configure_hook(_recorder, inheritable=True)


@contextmanager
def recording_chat_model_inputs() -> Iterator[ChatModelInputs]:
    recorder = ChatModelInputs()
    token = _recorder.set(recorder)
    try:
        yield recorder
    finally:
        _recorder.reset(token)
