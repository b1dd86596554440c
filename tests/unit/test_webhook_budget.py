"""A webhook's wait for a reply counts from the request's arrival, so a provider's deadline holds even
when starting the conversation or raising the turn was slow (a cold worker)."""

from __future__ import annotations

import time

import pytest

from functions.conversation_flow import MIN_WAIT_SECONDS, remaining_wait


def test_the_work_before_the_wait_comes_out_of_the_budget() -> None:
    arrived = time.time() - 1.5
    assert remaining_wait(4.0, arrived) == pytest.approx(2.5, abs=0.2)


def test_a_budget_spent_before_the_wait_still_looks_once_for_a_ready_reply() -> None:
    assert remaining_wait(4.0, time.time() - 10) == MIN_WAIT_SECONDS
