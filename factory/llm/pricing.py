"""What tokens cost: a price table per model (USD per 1M input / output tokens), user-overridable.

Prices change; the built-in table is a starting point. Override or extend it in `$FACTORY_HOME/config.yaml`:

    prices:
      gpt-4o: {input: 2.5, output: 10}
      openai:my-finetune: {input: 3, output: 12}

A model matches its exact name, then the longest known prefix (`gpt-4o-2024-08-06` -> `gpt-4o`).
Local providers (hf, vllm) cost nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from factory.errors import BadInput

LOCAL_PROVIDERS = {"hf", "vllm"}
BATCH_DISCOUNT = 0.5

BUILTIN_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4": (30.0, 60.0),
    "gpt-4-turbo": (10.0, 30.0),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-3.5-turbo": (0.5, 1.5),
    "claude-2.1": (8.0, 24.0),
    "claude-3-opus": (15.0, 75.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-haiku-4-5": (1.0, 5.0),
}


@dataclass(frozen=True)
class Price:
    input: float  # USD per 1M prompt tokens
    output: float  # USD per 1M completion tokens

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6

    def batch(self) -> Price:
        """The batch-API price: OpenAI's Batch API and Anthropic's Message Batches both charge half."""
        return Price(self.input * BATCH_DISCOUNT, self.output * BATCH_DISCOUNT)


FREE = Price(0.0, 0.0)


def _price(key: str, entry: Any, side: str) -> float:
    """One side of a `prices:` entry of the home config, refused (naming it) unless a finite number >= 0."""
    value = entry.get(side, 0.0) if isinstance(entry, dict) else None
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number) or number < 0:
        raise BadInput(f"config.yaml: prices.{key}.{side}: must be a number >= 0 (USD per 1M tokens), got {value!r}")
    return number


class PriceTable:
    def __init__(self, overrides: dict[str, dict[str, float]] | None = None):
        self.prices = {k: Price(*v) for k, v in BUILTIN_PRICES.items()}
        for key, p in (overrides or {}).items():
            self.prices[key] = Price(*(_price(key, p, side) for side in ("input", "output")))

    def lookup(self, provider: str, model: str) -> Price | None:
        """The price of `provider:model`, or None when unknown (a budget then cannot be enforced)."""
        if provider in LOCAL_PROVIDERS:
            return FREE
        for key in (f"{provider}:{model}", model):
            if key in self.prices:
                return self.prices[key]
        best = max((k for k in self.prices if model.startswith(k)), key=len, default=None)
        return self.prices[best] if best else None

