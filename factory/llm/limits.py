"""Client-side limits of one run: requests and tokens per minute (token buckets) and the `--budget` ledger.

`LLM` holds one `RateLimiter` and one `Budget`; both are swappable, so the Ray executor can give every worker
the same run-wide ones (factory/pipeline/ray_limits.py) and the caps hold for the whole run, not per worker.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable


class Bucket:
    """`per_minute` units a minute, refilled continuously; `take` waits until there are enough.

    It starts with one second's worth and holds at most ten seconds' worth, so a run ramps up smoothly
    instead of firing a whole minute's quota in its first second.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate * 10)
        self.level = max(1.0, self.rate)
        self.clock, self.sleep = clock, sleep
        self.stamp = clock()
        self.lock = asyncio.Lock()

    async def take(self, amount: float) -> None:
        amount = min(amount, self.capacity)  # one huge request must still be able to go
        async with self.lock:
            while True:
                now = self.clock()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.level >= amount:
                    self.level -= amount
                    return
                await self.sleep((amount - self.level) / self.rate)


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = Bucket(rpm) if rpm else None
        self.tokens = Bucket(tpm) if tpm else None

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    async def acquire(self, tokens: int) -> None:
        if self.requests is not None:
            await self.requests.take(1)
        if self.tokens is not None:
            await self.tokens.take(tokens)


class Budget:
    """The `--budget` ledger: a call reserves its worst-case cost before it is sent and settles at what it cost.

    The spend can never pass the cap: a reservation is granted only while spent + reserved + it <= cap, and an
    answer costs at most what was reserved for it. `cap` None: no budget, every reservation is granted.
    """

    def __init__(self, cap: float | None):
        self.cap = cap
        self.spent = 0.0
        self.reserved = 0.0

    def try_reserve(self, usd: float) -> bool:
        if self.cap is None:
            return True
        if self.spent + self.reserved + usd > self.cap:
            return False
        self.reserved += usd
        return True

    async def reserve(self, usd: float) -> bool:
        return self.try_reserve(usd)

    def settle(self, reserved: float, spent: float = 0.0) -> None:
        """Free a reservation and book what was spent, in one step (a shared ledger must never see the money
        freed before it is booked)."""
        self.reserved -= reserved
        self.spent += spent


class Gate:
    """A counting semaphore whose waiters may jump the queue: retries go before first attempts.

    With a plain FIFO semaphore a retry, back from its backoff, would queue behind every new request
    waiting for a slot, and the rows that already failed once would finish last.
    """

    def __init__(self, slots: int):
        self.free = slots
        self.waiters: deque[asyncio.Future] = deque()

    async def acquire(self, urgent: bool = False) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        fut = asyncio.get_running_loop().create_future()
        (self.waiters.appendleft if urgent else self.waiters.append)(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over just as we were cancelled: pass it on
            else:
                self.waiters.remove(fut)
            raise

    def release(self) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)  # hand the slot straight to the next waiter
                return
        self.free += 1
