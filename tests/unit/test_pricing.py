"""The cost estimate: dated snapshots priced as their model, unknown models and counts cost nothing known."""

from __future__ import annotations

import pytest

from shared.agent.pricing import estimated_cost_usd


def test_a_dated_snapshot_is_priced_as_its_model() -> None:
    assert estimated_cost_usd("gpt-4o-2024-08-06", 1_000_000, 100_000) == pytest.approx(2.50 + 1.00)


def test_a_variant_of_a_priced_model_is_not_priced_as_that_model() -> None:
    assert estimated_cost_usd("gpt-4o-audio-preview", 1000, 1000) is None


@pytest.mark.parametrize(("model", "input_tokens", "output_tokens"), [(None, 10, 10), ("gpt-4o", None, 10)])
def test_an_unknown_model_or_token_count_has_no_cost(
    model: str | None, input_tokens: int | None, output_tokens: int | None
) -> None:
    assert estimated_cost_usd(model, input_tokens, output_tokens) is None
