"""Run-wide limits for `--executor ray`: one Ray actor holds the `--rpm`/`--tpm` buckets and the `--budget` ledger.

Every worker's `LLM` gets a `SharedLimiter` and a `SharedBudget` in place of its own (`LLM.limiter`, `LLM.budget`),
so the caps hold for the whole run, however many workers there are:

* rate: the actor schedules, it never blocks. `slot(tokens)` takes the request's units from the buckets at once
  (the level may go below zero) and answers how long the caller must wait before sending: callers are served in
  the order they asked, at the configured rate, as with the local `Bucket` (one second's worth at first, at most ten
  seconds' worth of burst). The buckets start filling at the first request, not while the actors start.
* budget: `reserve(usd)` is granted only while spent + reserved + usd <= cap; `settle(reserved, spent)` books an
  answer's cost and frees its reservation in one actor call. A worker's calls to one actor run in the order it made
  them (Ray's ordering for a caller), so a settle sent without waiting is booked before its next reservation.

The actor asks for no CPU; one call is a local RPC (well under a millisecond on one machine), made only when a limit
is set.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from factory.llm.limits import Budget


class _Schedule:
    """A token bucket that answers waits instead of waiting: `per_minute` units a minute, 1 s worth at the start."""

    def __init__(self, per_minute: float):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * 10)
        self.level = max(1.0, self.rate)
        self.stamp: float | None = None

    def take(self, amount: float, now: float) -> float:
        if self.stamp is None:
            self.stamp = now
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.level -= min(amount, self.capacity)  # one huge request must still be able to go
        return max(0.0, -self.level / self.rate)


class RunLimits:
    """The Ray actor (made with `ray.remote(num_cpus=0)(RunLimits)`): buckets and ledger of one run."""

    def __init__(self, rpm: float | None, tpm: float | None, budget_usd: float | None):
        self.requests = _Schedule(rpm) if rpm else None
        self.tokens = _Schedule(tpm) if tpm else None
        self.ledger = Budget(budget_usd)

    def slot(self, tokens: int) -> float:
        now = time.monotonic()
        waits = [0.0]
        if self.requests is not None:
            waits.append(self.requests.take(1, now))
        if self.tokens is not None:
            waits.append(self.tokens.take(tokens, now))
        return max(waits)

    def reserve(self, usd: float) -> bool:
        return self.ledger.try_reserve(usd)

    def settle(self, reserved: float, spent: float) -> None:
        self.ledger.settle(reserved, spent)

    def totals(self) -> dict[str, float]:
        return {"spent": self.ledger.spent, "reserved": self.ledger.reserved}


def start(ray: Any, settings: Any) -> Any | None:
    """The run's limits actor, or None when no limit is set (nothing to share, no RPC per call)."""
    if not (settings.rpm or settings.tpm or settings.budget_usd is not None):
        return None
    return ray.remote(num_cpus=0)(RunLimits).remote(settings.rpm, settings.tpm, settings.budget_usd)


class SharedLimiter:
    """`RateLimiter`'s interface over the run's actor."""

    active = True

    def __init__(self, actor: Any):
        self.actor = actor

    async def acquire(self, tokens: int) -> None:
        wait = await self.actor.slot.remote(tokens)
        if wait > 0:
            await asyncio.sleep(wait)


class SharedBudget(Budget):
    """`Budget`'s interface over the run's actor (the local fields stay unused)."""

    def __init__(self, actor: Any, cap: float | None):
        super().__init__(cap)
        self.actor = actor

    async def reserve(self, usd: float) -> bool:
        return self.cap is None or await self.actor.reserve.remote(usd)

    def try_reserve(self, usd: float) -> bool:
        import ray

        return self.cap is None or ray.get(self.actor.reserve.remote(usd))

    def settle(self, reserved: float, spent: float = 0.0) -> None:
        if self.cap is not None and (reserved or spent):
            self.actor.settle.remote(reserved, spent)  # no wait: ordered before this worker's next reserve


def share(llm: Any, actor: Any | None) -> None:
    """Give a worker's `llm` the run's limits in place of its own."""
    if actor is None:
        return
    if llm.settings.rpm or llm.settings.tpm:
        llm.limiter = SharedLimiter(actor)
    llm.budget = SharedBudget(actor, llm.settings.budget_usd)
