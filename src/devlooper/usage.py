"""Token usage and its cost: what a run has spent, per step and in all.

Every model call adds its ``usage_metadata`` to the state's ``usage`` counters
(``input_tokens``, ``output_tokens``, ``calls``, and the same per step as
``diagnose.input_tokens``; see ``models.ask_text``). The cost is estimated from
those counts and a small price table, which a user extends with a JSON file
(``Context.prices``) for the models it does not know (a local model: price 0).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from .budgets import over_budget
from .errors import ConfigError

if TYPE_CHECKING:
    from .context import Context

# USD per million tokens (input, output), as published by the providers.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-5.1": (1.25, 10.0),
    "gpt-5": (1.25, 10.0),
    "gpt-5-mini": (0.25, 2.0),
    "gpt-5-nano": (0.05, 0.4),
    "gpt-4.1": (2.0, 8.0),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4o": (2.5, 10.0),
    "gpt-4o-mini": (0.15, 0.6),
    "o3": (2.0, 8.0),
    "o4-mini": (1.1, 4.4),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-sonnet-4-5": (3.0, 15.0),
    "claude-haiku-4-5": (1.0, 5.0),
    "gemini-2.5-pro": (1.25, 10.0),
    "gemini-2.5-flash": (0.3, 2.5),
}

TOTALS = ("input_tokens", "output_tokens", "calls")


@cache
def _user_prices(path: str) -> dict[str, tuple[float, float]]:
    try:
        data = json.loads(Path(path).expanduser().read_text())
        return {name: (float(p["input"]), float(p["output"])) for name, p in data.items()}
    except FileNotFoundError:
        raise ConfigError(f"price table not found: {path}") from None
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f'price table {path} is not {{"model": {{"input": USD/Mtok, "output": USD/Mtok}}}}: {exc}'
        ) from None


def price_of(model: str, prices: str | None = None) -> tuple[float, float] | None:
    """(input, output) USD per million tokens of ``model`` ("provider:name" or "name"); None if unknown."""
    table = {**PRICES, **(_user_prices(prices) if prices else {})}
    name = model.partition(":")[2] if ":" in model else model
    for candidate in (model, name):
        if candidate in table:
            return table[candidate]
    # A dated snapshot (gpt-4o-2024-08-06) costs what its family does: the longest known prefix.
    known = sorted((k for k in table if name.startswith(k + "-")), key=len, reverse=True)
    return table[known[0]] if known else None


def cost_of(usage: dict[str, float], model: str, prices: str | None = None) -> float | None:
    price = price_of(model, prices)
    if price is None:
        return None
    return (usage.get("input_tokens", 0) * price[0] + usage.get("output_tokens", 0) * price[1]) / 1_000_000


def tokens_of(usage: dict[str, float]) -> int:
    return int(usage.get("input_tokens", 0) + usage.get("output_tokens", 0))


def summary(usage: dict[str, float], model: str, prices: str | None = None) -> dict:
    """The run's usage as the report and the CLI show it: totals, cost (None if the
    model's price is unknown) and the same per step."""
    steps: dict[str, dict[str, int]] = {}
    for key, value in usage.items():
        step, dot, name = key.rpartition(".")
        if dot and name in TOTALS:
            steps.setdefault(step, {})[name] = int(value)
    cost = cost_of(usage, model, prices)
    return {
        **{name: int(usage.get(name, 0)) for name in TOTALS},
        "total_tokens": tokens_of(usage),
        "cost_usd": None if cost is None else round(cost, 6),
        "by_step": steps,
    }


def budget_exceeded(usage: dict[str, float], ctx: "Context") -> str | None:
    """Why the run must stop for its budget (``Context.max_tokens``, ``max_cost``), or None."""
    cost = cost_of(usage, ctx.model, ctx.prices) if ctx.max_cost else None
    return over_budget(usage, ctx.max_tokens, ctx.max_cost, cost)
