"""The agent's tools for one turn: what the model may call, and what happened when it did.

Built-in tools act on the call (`end_call`, `transfer_to_human`), on the agent's knowledge
(`search_knowledge`) and on the agent owner's work (`schedule_callback`); HTTP tools come from the
agent file. A tool offered to a model is one that can work: `transfer_to_human` only for an agent
with a transfer number, `schedule_callback` only where callbacks can be stored. Every call is
recorded (arguments, result, time), and a failure is told to the model as the tool's answer, so it
can apologise instead of the turn failing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from langchain_core.documents import Document
from langchain_core.messages import ToolCall as ModelToolCall
from langchain_core.messages import ToolMessage
from langchain_core.retrievers import BaseRetriever

from shared.agent.http_tools import ToolFailed, call_http_tool
from shared.agent.prompt import format_knowledge
from shared.models import AgentProfile, HttpTool, ToolCall, TurnAction
from shared.security.egress import EgressPolicy
from shared.storage.callbacks import CallbackRepository, CallbackRequest

RESULT_CHARS = 2000
"""What a tool's answer may add to the prompt (and to the stored turn)."""
TEXT_ARGUMENT_CHARS = 500

ToolSpec = dict[str, Any]
"""A tool in OpenAI's function-calling format, which `bind_tools` takes for every provider."""


def _spec(name: str, description: str, properties: dict[str, Any], required: list[str]) -> ToolSpec:
    parameters = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description, "maxLength": TEXT_ARGUMENT_CHARS}


SEARCH_KNOWLEDGE = _spec(
    "search_knowledge",
    "Search the agent's knowledge base when the passages in the instructions do not answer the caller.",
    {"query": _text("What to look for, in a few words.")},
    ["query"],
)
TRANSFER_TO_HUMAN = _spec(
    "transfer_to_human",
    "Transfer the caller to a person. Call it when the caller asks for a human or you cannot help.",
    {"reason": _text("Why the caller is being transferred.")},
    [],
)
END_CALL = _spec(
    "end_call",
    "End the call after saying goodbye. Call it when the caller is done.",
    {"reason": _text("Why the call ends.")},
    [],
)
SCHEDULE_CALLBACK = _spec(
    "schedule_callback",
    "Arrange for a person to call the caller back.",
    {
        "phone_number": {
            "type": "string",
            "description": "The number to call back, or 'caller' for the number of this call.",
            "maxLength": 32,
        },
        "when": _text("When the caller wants the call, in their words (for example 'tomorrow at 5 pm')."),
        "note": _text("What the call is about."),
    },
    ["phone_number", "when"],
)


def http_tool_spec(tool: HttpTool) -> ToolSpec:
    return {
        "type": "function",
        "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
    }


@dataclass
class ToolBox:
    """The tools of one turn of one conversation, and the record of their calls."""

    profile: AgentProfile
    retriever: BaseRetriever
    egress: EgressPolicy
    conversation_id: str
    turn: int
    callbacks: CallbackRepository | None = None
    calls: list[ToolCall] = field(default_factory=list)
    found: list[Document] = field(default_factory=list)
    """Knowledge passages `search_knowledge` showed the model: a reply may cite them."""
    action: TurnAction = TurnAction.CONTINUE
    transfer_to: str | None = None

    def specs(self) -> list[ToolSpec]:
        offered = [SEARCH_KNOWLEDGE, END_CALL]
        if self.profile.transfer_number:
            offered.append(TRANSFER_TO_HUMAN)
        if self.callbacks is not None:
            offered.append(SCHEDULE_CALLBACK)
        return offered + [http_tool_spec(tool) for tool in self.profile.tools]

    def run(self, requested: list[ModelToolCall]) -> list[ToolMessage]:
        """Call each tool the model asked for, in order; one ToolMessage per call."""
        answers = []
        for call in requested:
            started_at, started = datetime.now(UTC), time.perf_counter()
            arguments = call["args"] if isinstance(call["args"], dict) else {}
            try:
                result, error = self._call(call["name"], arguments), False
            except ToolFailed as failed:
                result, error = f"error: {failed}", True
            result = result[:RESULT_CHARS]
            self.calls.append(
                ToolCall(
                    name=call["name"],
                    arguments=arguments,
                    result=result,
                    error=error,
                    started_at=started_at.isoformat(),
                    ms=round((time.perf_counter() - started) * 1000, 2),
                )
            )
            answers.append(ToolMessage(result, tool_call_id=call["id"] or call["name"], name=call["name"]))
        return answers

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        offered = {spec["function"]["name"] for spec in self.specs()}
        if name not in offered:
            raise ToolFailed(f"there is no tool named {name!r}")
        if name == "search_knowledge":
            query = str(arguments.get("query", ""))[:TEXT_ARGUMENT_CHARS]
            documents = self.retriever.invoke(query)
            self.found += documents
            return format_knowledge(documents)
        if name == "end_call":
            self.action = TurnAction.END_CALL
            return json.dumps({"ending": True})
        if name == "transfer_to_human":
            self.action, self.transfer_to = TurnAction.TRANSFER, self.profile.transfer_number
            return json.dumps({"transferring_to": self.profile.transfer_number})
        if name == "schedule_callback":
            return self._schedule_callback(arguments)
        tool = next(t for t in self.profile.tools if t.name == name)
        key = f"{self.conversation_id}:{self.turn}:{len(self.calls)}"
        return call_http_tool(tool, arguments, self.egress, idempotency_key=key)

    def _schedule_callback(self, arguments: dict[str, Any]) -> str:
        assert self.callbacks is not None
        phone_number = str(arguments.get("phone_number", "")).strip()[:32]
        when = str(arguments.get("when", "")).strip()[:TEXT_ARGUMENT_CHARS]
        if not phone_number or not when:
            raise ToolFailed("schedule_callback needs a phone_number and a when")
        self.callbacks.schedule(
            CallbackRequest(
                conversation_id=self.conversation_id,
                turn=self.turn,
                call_index=len(self.calls),
                agent=self.profile.name,
                phone_number=phone_number,
                requested_time=when,
                note=str(arguments.get("note", ""))[:TEXT_ARGUMENT_CHARS],
            )
        )
        return json.dumps({"scheduled": True, "phone_number": phone_number, "when": when})
