"""Estimated cost of a model call, from a small price table in US dollars per million tokens.

Prices are meant to be OpenAI's standard (pay-as-you-go, non-batch, uncached) list prices
(https://platform.openai.com/docs/pricing; Azure OpenAI's global standard deployments list the same for
these models). They were taken from secondary summaries of that page, not checked against the page
itself from this workplace: verify them before relying on them. They are estimates for dashboards, not
invoices: cached input, batch discounts and regional or
provisioned deployments cost differently, and prices change. A model missing here costs None
(unknown), never zero; the offline model runs locally and costs nothing.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Price(NamedTuple):
    input_per_million: float
    output_per_million: float


PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "offline-agent": Price(0.0, 0.0),
}

_SNAPSHOT_DATE = re.compile(r"-\d{4}-\d{2}-\d{2}$")
"""Providers answer with a dated snapshot ("gpt-4o-2024-08-06"), priced as its model."""


def estimated_cost_usd(model: str | None, input_tokens: int | None, output_tokens: int | None) -> float | None:
    """The call's estimated cost, or None when the model's price or the token counts are unknown."""
    price = PRICES.get(_SNAPSHOT_DATE.sub("", model)) if model else None
    if price is None or input_tokens is None or output_tokens is None:
        return None
    return (input_tokens * price.input_per_million + output_tokens * price.output_per_million) / 1_000_000
