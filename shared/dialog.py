"""The turn policy: what a conversation does next. Pure functions, no I/O.

The orchestrator asks these questions and obeys the answers, so every decision about greeting,
re-prompting, hanging up and continue-as-new is unit-testable without a Durable host.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.models import Answered, ConversationState, Outcome, Presence, TurnAction, Utterance

RECENT_REQUESTS_KEPT = 8
"""Request ids remembered to recognise a provider's retry of an already answered turn."""


class Step(StrEnum):
    CONTINUE = "continue"
    REPROMPT = "reprompt"
    HANG_UP = "hang_up"
    CONTINUE_AS_NEW = "continue_as_new"
    GREET = "greet"
    LEAVE_VOICEMAIL = "leave_voicemail"


@dataclass(frozen=True)
class Decision:
    step: Step
    outcome: Outcome | None = None


ENDING_ACTIONS: dict[TurnAction, Outcome] = {
    TurnAction.END_CALL: Outcome.COMPLETED,
    TurnAction.TRANSFER: Outcome.TRANSFERRED,
}
"""The agent ends or transfers a call by calling a tool (`end_call`, `transfer_to_human`), never by
the words of its reply: a model that says goodbye without calling end_call keeps the line open."""


def utterance_event(state: ConversationState) -> str:
    """The name of the event carrying the caller's next utterance: unique per utterance.

    The Durable Python SDK re-delivers an event that arrived before anyone waited for it to every
    later waiter of the same name, so each utterance gets a name of its own. Channels learn it from
    the orchestration's custom status (`expecting`).
    """
    return f"utterance-{state.utterances_heard + 1}"


def heard_utterance(state: ConversationState) -> ConversationState:
    return state.model_copy(update={"utterances_heard": state.utterances_heard + 1})


def follows_presence(state: ConversationState) -> bool:
    """A web session ends when its client has gone for the grace period; other channels end otherwise."""
    return state.disconnect_grace_seconds is not None


def presence_event_named(seq: int) -> str:
    """The presence event counted `seq`-th: one per connect or disconnect, numbered as the event handler
    counted them (unique names, for the same SDK reason as `utterance_event`)."""
    return f"presence-{seq}"


def presence_event(state: ConversationState) -> str:
    """The name of the next presence event to take: they are taken in the order they were counted."""
    return presence_event_named((state.presence_seen or 0) + 1)


def after_presence(state: ConversationState, presence: Presence) -> ConversationState:
    """State once a presence count is taken: the client is gone when no connection is open. A count older
    than one taken already changes nothing."""
    if state.presence_seen is not None and presence.seq <= state.presence_seen:
        return state
    return state.model_copy(update={"presence_seen": presence.seq, "client_gone": not presence.connected})


def needs_greeting(state: ConversationState) -> bool:
    """A conversation greets once, at its very first turn, never again after continue-as-new."""
    return state.next_turn == 0


def is_retry(state: ConversationState, request_id: str) -> bool:
    """True when this request already produced a turn: answer it again, never twice."""
    return request_id in state.recent_request_ids


def on_answer(answered: Answered) -> Decision:
    """An outbound call was answered: a person is greeted; a machine gets the agent's voicemail message
    when it has one (the call then ends `voicemail`), else the call hangs up at once."""
    if not answered.machine:
        return Decision(Step.GREET)
    if answered.leave_message:
        return Decision(Step.LEAVE_VOICEMAIL, Outcome.VOICEMAIL)
    return Decision(Step.HANG_UP, Outcome.ANSWERING_MACHINE)


def after_reply(state: ConversationState, action: TurnAction) -> Decision:
    """After the agent has answered: end the call, keep going, or start a fresh generation."""
    if action in ENDING_ACTIONS:
        return Decision(Step.HANG_UP, ENDING_ACTIONS[action])
    if state.turns_this_generation >= state.policy.turns_per_generation:
        return Decision(Step.CONTINUE_AS_NEW)
    return Decision(Step.CONTINUE)


def on_silence(state: ConversationState) -> Decision:
    """The caller said nothing for the silence timeout: re-prompt, or give up after enough tries."""
    if state.silences >= state.policy.max_silences:
        return Decision(Step.HANG_UP, Outcome.NO_RESPONSE)
    return Decision(Step.REPROMPT)


def after_turn(state: ConversationState, request_id: str | None) -> ConversationState:
    """State once a turn is answered: count it, reset silences, remember the request id."""
    recent = state.recent_request_ids
    if request_id is not None:
        recent = [*recent, request_id][-RECENT_REQUESTS_KEPT:]
    return state.model_copy(
        update={
            "next_turn": state.next_turn + 1,
            "turns_this_generation": state.turns_this_generation + 1,
            "silences": 0,
            "recent_request_ids": recent,
        }
    )


def after_reprompt(state: ConversationState) -> ConversationState:
    """State once a re-prompt turn is spoken: it is a turn, and one more silence."""
    return state.model_copy(
        update={
            "next_turn": state.next_turn + 1,
            "turns_this_generation": state.turns_this_generation + 1,
            "silences": state.silences + 1,
        }
    )


def next_generation(
    state: ConversationState, summary: str, pending_reply: str | None, waiting: Utterance | None = None
) -> ConversationState:
    """The input of the next generation: same conversation, history folded into a summary.

    The last reply is published by the next generation, not this one. An utterance that already
    reached this generation (`waiting`, raised while the turn lock had expired) is carried over and
    answered first: events an execution never consumed are dropped when it continues as new. For the
    same reason a web session's next generation asks for the presence count before it waits for more.
    """
    return state.model_copy(
        update={
            "turns_this_generation": 0,
            "summary": summary,
            "pending_reply": pending_reply,
            "carried_utterance": waiting,
            "presence_seen": None if follows_presence(state) else state.presence_seen,
        }
    )
