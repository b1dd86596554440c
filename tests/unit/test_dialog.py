"""The turn policy, decision by decision."""

from __future__ import annotations

from shared import dialog
from shared.dialog import Step
from shared.models import ConversationState, DialogPolicy, Outcome, TurnAction


def state(**fields: object) -> ConversationState:
    policy = DialogPolicy(silence_timeout_seconds=30, max_silences=2, turns_per_generation=3)
    return ConversationState(
        conversation_id="c1", tenant="demo", agent="demo", language="en-US", policy=policy
    ).model_copy(update=fields)


def test_only_a_new_conversation_greets() -> None:
    assert dialog.needs_greeting(state())
    assert not dialog.needs_greeting(state(next_turn=4, turns_this_generation=0))


def test_end_call_hangs_up_completed_and_a_transfer_hangs_up_transferred() -> None:
    assert dialog.after_reply(state(), TurnAction.END_CALL) == dialog.Decision(Step.HANG_UP, Outcome.COMPLETED)
    assert dialog.after_reply(state(), TurnAction.TRANSFER) == dialog.Decision(Step.HANG_UP, Outcome.TRANSFERRED)


def test_a_turn_whose_tools_did_not_end_the_call_continues_until_the_generation_is_full() -> None:
    assert dialog.after_reply(state(turns_this_generation=2), TurnAction.CONTINUE).step is Step.CONTINUE
    assert dialog.after_reply(state(turns_this_generation=3), TurnAction.CONTINUE).step is Step.CONTINUE_AS_NEW


def test_silence_reprompts_then_hangs_up_after_max_silences() -> None:
    assert dialog.on_silence(state(silences=0)).step is Step.REPROMPT
    assert dialog.on_silence(state(silences=1)).step is Step.REPROMPT
    assert dialog.on_silence(state(silences=2)) == dialog.Decision(Step.HANG_UP, Outcome.NO_RESPONSE)


def test_a_turn_counts_resets_silences_and_remembers_its_request() -> None:
    after = dialog.after_turn(state(next_turn=3, turns_this_generation=1, silences=2), "req-9")
    assert (after.next_turn, after.turns_this_generation, after.silences) == (4, 2, 0)
    assert dialog.is_retry(after, "req-9")
    assert not dialog.is_retry(after, "req-10")


def test_only_the_most_recent_request_ids_are_kept() -> None:
    current = state()
    for number in range(dialog.RECENT_REQUESTS_KEPT + 3):
        current = dialog.after_turn(current, f"r{number}")
    assert len(current.recent_request_ids) == dialog.RECENT_REQUESTS_KEPT
    assert not dialog.is_retry(current, "r0")
    assert dialog.is_retry(current, f"r{dialog.RECENT_REQUESTS_KEPT + 2}")


def test_reprompt_is_a_turn_and_a_silence() -> None:
    after = dialog.after_reprompt(state(next_turn=2, silences=1))
    assert (after.next_turn, after.silences) == (3, 2)


def test_next_generation_keeps_the_conversation_and_folds_history_into_a_summary() -> None:
    current = dialog.after_turn(state(next_turn=7, turns_this_generation=3), "r1")
    following = dialog.next_generation(current, "7 turns; asked about hours", "r1")
    assert following.next_turn == current.next_turn
    assert following.turns_this_generation == 0
    assert following.summary == "7 turns; asked about hours"
    assert following.recent_request_ids == current.recent_request_ids
    assert following.pending_reply == "r1"
    assert not dialog.needs_greeting(following)


def test_every_utterance_has_an_event_name_of_its_own() -> None:
    first = state()
    assert dialog.utterance_event(first) == "utterance-1"
    second = dialog.heard_utterance(first)
    assert dialog.utterance_event(second) == "utterance-2"
    assert dialog.utterance_event(dialog.next_generation(second, "", None)) == "utterance-2"
