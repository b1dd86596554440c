"""The conversation orchestrator (one instance per conversation) and its activities.

The orchestrator owns the conversation's lifecycle and nothing else: it waits for events, calls
activities and obeys `shared.dialog`. It is deterministic (time comes from the context, settings
from its input) and keeps its state small so replay stays cheap; continue-as-new every N turns
keeps it flat however long the call runs.

The orchestrator is not on the path to the caller's first audio: one activity per turn
(`answer_turn`) hears, answers, speaks sentence by sentence and hands the reply over, announcing
first the event name the caller's next utterance goes under. A caller may speak before the
orchestrator has seen the turn end; the runtime keeps that event until its waiter opens.

Two rules keep events safe with the Durable Python SDK: each utterance has an event name of its
own (`dialog.utterance_event`), and a waiter lives until its event arrives (re-used across silence
timeouts) so no event can land on a forgotten waiter.

Continue-as-new drops events the ending generation received but never looked at. An utterance
that reached the open waiter before the generation ended is therefore carried in the next
generation's input and answered first; one raised later reaches the next generation's waiter.

A web session also listens for `presence-<n>` events (its client's connections, counted by the
event handler): with none open, a durable timer of the grace period runs while it listens, and the
conversation ends `disconnected` when it fires and the `presence` activity's count still says no
connection is open. Its next generation asks that activity for the count instead of carrying events over.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any, Dict  # noqa: UP035

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions import DurableOrchestrationContext as Context
from azure.durable_functions.models.Task import TaskBase

from shared import dialog, telemetry
from shared.event_data import raised_value
from shared.models import (
    Answered,
    ConversationState,
    FinalizeInput,
    Outcome,
    Presence,
    PresenceInput,
    PublishInput,
    PublishResult,
    SummarizeInput,
    TurnInput,
    TurnKind,
    TurnRecord,
    Utterance,
)
from shared.tenancy import tenant_scope

bp = df.Blueprint()

ORCHESTRATOR = "conversation"
END_EVENT = "end"
ANSWERED_EVENT = "answered"
GREETING_REQUEST_ID = "greeting"
"""The request id of a conversation's opening turn: its greeting, or an outbound call's voicemail message."""
ACCEPTING_STATES = frozenset({"greeting", "listening", "responding"})
"""Custom-status states in which the conversation takes utterances (channels read `expecting`)."""

TURN_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)
"""Work inside a turn: a transient fault costs the caller about a second; three failed attempts end the call."""
DELIVERY_RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=5)
"""Handing a reply over and finalizing: cheap and idempotent, and giving up loses a finished turn."""
RETRIES = {
    "answer_turn": TURN_RETRY,
    "summarize": TURN_RETRY,
    "publish": DELIVERY_RETRY,
    "finalize": DELIVERY_RETRY,
    "presence": DELIVERY_RETRY,
}
"""Every activity runs with retries (the Durable extension times them, as the devhost does)."""

Json = dict[str, Any]
ActivityJson = Dict[str, Any]  # noqa: UP006
"""Activity parameters: the Functions worker refuses PEP 585 generics (`dict[...]`) on binding parameters."""
Steps = Generator[Any, Any, Any]
Ending = tuple[Outcome | None, ConversationState]


def _call(context: Context, activity: str, payload: Any) -> TaskBase:
    return context.call_activity_with_retry(activity, RETRIES[activity], payload)


def _turn_input(state: ConversationState, kind: TurnKind, **fields: Any) -> TurnInput:
    return TurnInput(
        conversation_id=state.conversation_id,
        tenant=state.tenant,
        agent=state.agent,
        language=state.language,
        turn=state.next_turn,
        kind=kind,
        **fields,
    )


def _speak(context: Context, turn_input: TurnInput) -> Generator[Any, Any, TurnRecord]:
    """Answer a turn: one activity hears, answers, speaks and hands the reply to the waiting request.

    A request that already has a turn (its key re-used long after) gets that turn back.
    """
    return TurnRecord.model_validate((yield _call(context, "answer_turn", turn_input.model_dump(mode="json"))))


def _answer(context: Context, state: ConversationState, utterance: Utterance) -> Generator[Any, Any, TurnRecord]:
    turn_input = _turn_input(
        state,
        TurnKind.UTTERANCE,
        request_id=utterance.request_id,
        text=utterance.text,
        audio_blob=utterance.audio_blob,
        summary=state.summary,
        next_event=dialog.utterance_event(state),
        received_at=utterance.received_at,
        trace=utterance.trace,
    )
    return (yield from _speak(context, turn_input))


def _utterance(heard: TaskBase) -> Utterance:
    return Utterance.model_validate(raised_value(heard.result))


def _publish(context: Context, state: ConversationState, request_id: str) -> TaskBase:
    message = PublishInput(conversation_id=state.conversation_id, tenant=state.tenant, request_id=request_id)
    return _call(context, "publish", message.model_dump())


def _status(context: Context, state: ConversationState, mode: str, **details: Any) -> None:
    """Custom status; `expecting` (the next utterance's event name) only while utterances are welcome."""
    status: Json = {"state": mode, "turn": state.next_turn, "silences": state.silences, **details}
    if mode in ACCEPTING_STATES:
        status["expecting"] = dialog.utterance_event(state)
    context.set_custom_status(status)


def _ended_as(received: Any) -> Outcome:
    """The outcome an end request names (a phone call's status: busy, no answer, …), else ended by the client."""
    value = raised_value(received)
    outcome = value.get("outcome") if isinstance(value, dict) else None
    return Outcome(str(outcome)) if outcome in Outcome._value2member_map_ else Outcome.ENDED_BY_CLIENT


def _ring(context: Context, state: ConversationState, ended: TaskBase) -> Generator[Any, Any, Outcome | None]:
    """An outbound call rings: wait for it to be answered (the `answered` event), to end unanswered
    (busy, no answer: `end`), or for `ringing_seconds`. None: a person answered, greet them; else the
    outcome the conversation ends with (after the voicemail message, when one was left)."""
    assert state.ringing_seconds is not None
    _status(context, state, "ringing")
    answered = context.wait_for_external_event(ANSWERED_EVENT)
    timeout = context.create_timer(context.current_utc_datetime + timedelta(seconds=state.ringing_seconds))
    winner = yield context.task_any([answered, ended, timeout])
    if winner is not timeout:
        timeout.cancel()
    if winner is ended:
        return _ended_as(ended.result)
    if winner is timeout:
        return Outcome.NO_ANSWER
    decision = dialog.on_answer(Answered.model_validate(raised_value(answered.result)))
    if decision.step is dialog.Step.LEAVE_VOICEMAIL:
        _status(context, state, "voicemail")
        message = _turn_input(state, TurnKind.VOICEMAIL, request_id=GREETING_REQUEST_ID)
        yield from _speak(context, message)
    return decision.outcome


def _presence(context: Context, state: ConversationState) -> TaskBase | None:
    """The waiter of a web session's next presence event (None for other channels)."""
    return context.wait_for_external_event(dialog.presence_event(state)) if dialog.follows_presence(state) else None


def _grace(context: Context, state: ConversationState) -> TaskBase | None:
    """While a web session's client is gone: the timer past which the conversation ends without it."""
    if not state.client_gone or state.disconnect_grace_seconds is None:
        return None
    return context.create_timer(context.current_utc_datetime + timedelta(seconds=state.disconnect_grace_seconds))


def _counted_presence(context: Context, state: ConversationState) -> Generator[Any, Any, ConversationState]:
    """A new generation of a web session starts from the presence count, not from events it never saw."""
    message = PresenceInput(conversation_id=state.conversation_id, tenant=state.tenant)
    counted = Presence.model_validate((yield _call(context, "presence", message.model_dump())))
    return dialog.after_presence(state, counted)


def _converse(context: Context, state: ConversationState) -> Generator[Any, Any, Ending]:
    """The turn loop; returns how the conversation ended, or None once it continued as new."""
    publishing: TaskBase | None = None
    ended: TaskBase | None = None
    if state.ringing_seconds is not None and dialog.needs_greeting(state):
        ended = context.wait_for_external_event(END_EVENT)  # the same waiter serves the whole call
        unanswered = yield from _ring(context, state, ended)
        if unanswered is not None:
            return unanswered, state
    if state.pending_reply is not None:
        published = PublishResult.model_validate((yield _publish(context, state, state.pending_reply)))
        if published.ending:
            return Outcome.ENDED_BY_CLIENT, state
    if dialog.needs_greeting(state):
        _status(context, state, "greeting")
        greeting = _turn_input(
            state,
            TurnKind.GREETING,
            request_id=GREETING_REQUEST_ID,
            next_event=dialog.utterance_event(state),
            received_at=context.current_utc_datetime.timestamp(),
            trace=state.greeting_trace,
        )
        yield from _speak(context, greeting)
        state = dialog.after_turn(state, GREETING_REQUEST_ID)
    heard = context.wait_for_external_event(dialog.utterance_event(state))
    if ended is None:
        ended = context.wait_for_external_event(END_EVENT)
    if dialog.follows_presence(state) and state.presence_seen is None:
        state = yield from _counted_presence(context, state)
    presence, gone = _presence(context, state), _grace(context, state)
    carried = state.carried_utterance
    while True:
        if carried is not None:
            utterance, carried = carried, None
        else:
            _status(context, state, "listening")
            silence = context.create_timer(
                context.current_utc_datetime + timedelta(seconds=state.policy.silence_timeout_seconds)
            )
            while True:  # a presence change is taken without restarting the silence timer
                listen = context.task_any([heard, ended, silence, *(t for t in (presence, gone) if t is not None)])
                yield listen if publishing is None else context.task_all([publishing, listen])
                publishing = None
                winner = listen.result
                if winner is gone and presence is not None and not presence.is_completed:
                    # Counted again before ending: a presence event lost on its way would hold back every later one.
                    state = yield from _counted_presence(context, state)
                    if state.client_gone:
                        break
                    presence, gone = _presence(context, state), None
                    continue
                if presence is None or not (winner is presence or (winner is gone and presence.is_completed)):
                    break  # (a reconnect counted as the grace ran out is taken first)
                state = dialog.after_presence(state, Presence.model_validate(raised_value(presence.result)))
                presence = _presence(context, state)
                if state.client_gone and gone is None:
                    gone = _grace(context, state)
                elif not state.client_gone and gone is not None:
                    gone.cancel()
                    gone = None
            if winner is not silence:
                silence.cancel()
            if winner is gone:
                return Outcome.DISCONNECTED, state
            if winner is ended:
                return _ended_as(ended.result), state
            if winner is silence:
                decision = dialog.on_silence(state)
                if decision.step is dialog.Step.HANG_UP:
                    return decision.outcome or Outcome.NO_RESPONSE, state
                yield from _speak(
                    context, _turn_input(state, TurnKind.REPROMPT, next_event=dialog.utterance_event(state))
                )
                state = dialog.after_reprompt(state)
                continue
            utterance = _utterance(heard)
            if gone is not None:  # the client spoke: it is connected, whatever the counts say so far
                gone.cancel()
                gone = None
        state = dialog.heard_utterance(state)
        heard = context.wait_for_external_event(dialog.utterance_event(state))
        if dialog.is_retry(state, utterance.request_id):
            publishing = _publish(context, state, utterance.request_id)
            continue
        _status(context, state, "responding")
        record = yield from _answer(context, state, utterance)
        if record.turn != state.next_turn:  # an old request's turn, handed over again by answer_turn
            continue
        state = dialog.after_turn(state, utterance.request_id)
        decision = dialog.after_reply(state, record.action)
        if decision.step is dialog.Step.CONTINUE_AS_NEW:
            summarize = SummarizeInput(conversation_id=state.conversation_id, tenant=state.tenant)
            summarizing = _call(context, "summarize", summarize.model_dump())
            yield context.task_any([summarizing, heard])  # an unawaited waiter would not see its event
            summary = yield summarizing
            waiting = _utterance(heard) if heard.is_completed else None
            following = dialog.next_generation(state, summary, utterance.request_id, waiting)
            context.continue_as_new(following.model_dump(mode="json"))
            return None, state
        elif decision.step is dialog.Step.HANG_UP:
            _status(context, state, "ending")
            return decision.outcome or Outcome.COMPLETED, state


@bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
def conversation(context: Context) -> Steps:
    state = ConversationState.model_validate(context.get_input())
    details: Json = {}
    try:
        outcome, state = yield from _converse(context, state)
    except Exception as error:  # an activity failed: end the conversation cleanly, keep what was said
        outcome, details = Outcome.FAILED, {"error": str(error)[:500]}
    if outcome is None:
        return None
    _status(context, state, "finalizing", **details)
    finalize = FinalizeInput(conversation_id=state.conversation_id, tenant=state.tenant, outcome=outcome)
    return (yield _call(context, "finalize", finalize.model_dump(mode="json")))


# The activities load the app's core on first use, not at import: LangChain, the speech engines and
# the storage clients would add about a second to every cold start, HTTP functions included. Each
# runs as the tenant its input names (storage refuses to work without one).


def _invocation(context: func.Context) -> str | None:
    """The invocation's traceparent as the Functions host passes it (Azure's telemetry of this execution):
    the parent of an activity's span when its input carries no trace. Activities are synchronous, and the
    worker attaches that context to the event loop's task only, not to the thread a sync function runs in."""
    return context.trace_context.trace_parent or None


@bp.activity_trigger(input_name="request")
def answer_turn(request: ActivityJson, context: func.Context) -> Json:
    from shared import activities
    from shared.services import services

    turn = TurnInput.model_validate(request)
    about: telemetry.Attributes = {"voice_agent.conversation.id": turn.conversation_id, "voice_agent.turn": turn.turn}
    traced = telemetry.span("answer_turn", about, parent=turn.trace, invocation=_invocation(context))
    with tenant_scope(turn.tenant), traced:
        return activities.answer_turn(services(), turn).model_dump(mode="json")


@bp.activity_trigger(input_name="request")
def publish(request: ActivityJson) -> Json:
    from shared import activities
    from shared.services import services

    message = PublishInput.model_validate(request)
    with tenant_scope(message.tenant):
        return activities.publish(services(), message.conversation_id, message.request_id).model_dump(mode="json")


@bp.activity_trigger(input_name="request")
def presence(request: ActivityJson) -> Json:
    from shared import activities
    from shared.services import services

    message = PresenceInput.model_validate(request)
    with tenant_scope(message.tenant):
        return activities.presence(services(), message.conversation_id).model_dump(mode="json")


@bp.activity_trigger(input_name="request")
def summarize(request: ActivityJson) -> str:
    from shared import activities
    from shared.services import services

    message = SummarizeInput.model_validate(request)
    with tenant_scope(message.tenant):
        return activities.summarize(services(), message.conversation_id)


@bp.activity_trigger(input_name="request")
def finalize(request: ActivityJson, context: func.Context) -> Json:
    from shared import activities
    from shared.services import services

    message = FinalizeInput.model_validate(request)
    about: telemetry.Attributes = {"voice_agent.conversation.id": message.conversation_id}
    traced = telemetry.span("finalize", about, invocation=_invocation(context))
    with tenant_scope(message.tenant), traced:
        return activities.finalize(services(), message).model_dump(mode="json")
