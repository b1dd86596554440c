"""A web session's grace period after its client disconnects, replayed through the real Durable SDK (the
devhost's replay, as the engine runs it): presence events start and stop a durable timer, and the
conversation ends `disconnected` only when that timer fires."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from devhost import history, replay
from devhost.registry import discover
from function_app import app
from shared import dialog
from shared.models import ConversationState, DialogPolicy, Presence

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GRACE = 30
CONVERSATION = discover(app).orchestrators["conversation"]
GREETING = {
    "conversation_id": "c1",
    "turn": 0,
    "kind": "greeting",
    "request_id": "greeting",
    "user_text": None,
    "intent": None,
    "reply_text": "Hello.",
    "action": "continue",
}


def web_session(**fields: Any) -> ConversationState:
    policy = DialogPolicy(silence_timeout_seconds=120, max_silences=2, turns_per_generation=20)
    return ConversationState(
        conversation_id="c1",
        tenant="demo",
        agent="demo",
        language="en-US",
        policy=policy,
        disconnect_grace_seconds=GRACE,
    ).model_copy(update=fields)


class Conversation:
    """One generation's history, grown step by step as the devhost engine grows it."""

    def __init__(self, state: ConversationState) -> None:
        self.input = json.dumps(state.model_dump(mode="json"))
        self.events: list[history.Event] = [history.execution_started(T0, "conversation", self.input)]

    def step(self, at: datetime, *new: history.Event) -> replay.Episode:
        self.events = [*self.events, history.orchestrator_started(at), *new]
        episode = replay.run(CONVERSATION, "c1", self.input, self.events)
        assert episode.error is None, episode.error
        for call in episode.activities:
            self.events.append(history.task_scheduled(at, call.task_id, call.name, call.input))
        for timer in episode.timers:
            self.events.append(history.timer_created(at, timer.timer_id, timer.fire_at))
        return episode

    def greeted(self) -> replay.Episode:
        self.step(T0)
        return self.step(T0, history.task_completed(T0, 0, json.dumps(GREETING)))


def presence(at: datetime, seq: int, *, connected: bool) -> history.Event:
    """As the event handler raises it (the extension's extra JSON encoding included)."""
    return history.event_raised(at, f"presence-{seq}", json.dumps(json.dumps({"seq": seq, "connected": connected})))


def fired(episode_timer: replay.TimerCall) -> history.Event:
    return history.timer_fired(episode_timer.fire_at, episode_timer.timer_id, episode_timer.fire_at)


def test_a_client_gone_for_the_grace_period_ends_the_conversation_disconnected() -> None:
    conversation = Conversation(web_session())
    conversation.greeted()
    assert conversation.step(T0, presence(T0, 1, connected=True)).timers == []
    left = T0 + timedelta(seconds=5)
    gone = conversation.step(left, presence(left, 2, connected=False))
    assert [t.fire_at for t in gone.timers] == [left + timedelta(seconds=GRACE)]
    counted = conversation.step(gone.timers[0].fire_at, fired(gone.timers[0]))
    assert [call.name for call in counted.activities] == ["presence"], "counted again before it ends"
    at, [count] = gone.timers[0].fire_at, counted.activities
    ended = conversation.step(at, history.task_completed(at, count.task_id, json.dumps({"seq": 2, "connected": False})))
    assert [(call.name, json.loads(call.input or "null")["outcome"]) for call in ended.activities] == [
        ("finalize", "disconnected")
    ]


def test_a_reconnect_whose_presence_event_was_lost_is_counted_when_the_grace_runs_out() -> None:
    """The event handler counts a connection in Redis, then raises its event; a raise lost between the two
    must not end a session whose client is back (nor hold back every later presence event)."""
    conversation = Conversation(web_session())
    conversation.greeted()
    left = T0 + timedelta(seconds=5)
    gone = conversation.step(left, presence(left, 1, connected=False))
    at = gone.timers[0].fire_at
    [count] = conversation.step(at, fired(gone.timers[0])).activities
    back = conversation.step(at, history.task_completed(at, count.task_id, json.dumps({"seq": 2, "connected": True})))
    assert back.activities == [], "not ended"
    assert back.custom_status["state"] == "listening"
    later = at + timedelta(seconds=60)
    again = conversation.step(later, presence(later, 3, connected=False))
    assert [t.fire_at for t in again.timers] == [later + timedelta(seconds=GRACE)], "presence-3 is taken next"


def test_a_client_back_within_the_grace_period_stops_the_timer_and_the_conversation_goes_on() -> None:
    conversation = Conversation(web_session())
    conversation.greeted()
    left = T0 + timedelta(seconds=5)
    gone = conversation.step(left, presence(left, 1, connected=False))
    back = conversation.step(left, presence(left, 2, connected=True))
    assert back.cancelled_timers == [gone.timers[0].timer_id]
    late = conversation.step(gone.timers[0].fire_at, fired(gone.timers[0]))
    assert late.activities == []
    assert late.custom_status["state"] == "listening"


def test_a_presence_event_taken_out_of_order_waits_for_the_one_before_it() -> None:
    conversation = Conversation(web_session())
    conversation.greeted()
    early = conversation.step(T0, presence(T0, 2, connected=False))
    assert early.timers == [], "presence-2 is taken after presence-1"
    taken = conversation.step(T0, presence(T0, 1, connected=True))
    assert len(taken.timers) == 1, "then presence-2 says the client is gone"


def test_a_new_generation_counts_presence_before_it_waits_for_events() -> None:
    conversation = Conversation(web_session(next_turn=21, presence_seen=None, summary="earlier"))
    first = conversation.step(T0)
    assert [call.name for call in first.activities] == ["presence"]
    gone = conversation.step(T0, history.task_completed(T0, 0, json.dumps({"seq": 7, "connected": False})))
    assert [t.fire_at for t in gone.timers] == [T0 + timedelta(seconds=120), T0 + timedelta(seconds=GRACE)]


def test_presence_counts_older_than_the_last_taken_change_nothing() -> None:
    seen = dialog.after_presence(web_session(presence_seen=4), Presence(seq=5, connected=False))
    assert (seen.presence_seen, seen.client_gone) == (5, True)
    assert dialog.after_presence(seen, Presence(seq=3, connected=True)) == seen
    assert dialog.presence_event(seen) == "presence-6"


def test_only_a_web_session_follows_presence_and_its_next_generation_counts_again() -> None:
    assert not dialog.follows_presence(web_session(disconnect_grace_seconds=None))
    following = dialog.next_generation(web_session(presence_seen=9), "summary", "r1")
    assert following.presence_seen is None
    phone = dialog.next_generation(web_session(disconnect_grace_seconds=None, presence_seen=0), "summary", "r1")
    assert phone.presence_seen == 0
