"""The books of an LLM run: what each answer cost, whether it is usable, and when it counts as done.

Part of `LLM` (factory.llm.runner), shared by every producer (remote calls, batches, local models):

* the budget: each call reserves its worst-case cost before it is sent and is settled at its reported usage;
* validation: an empty reply or one that breaks the request's schema is paid for but unusable;
* `_finish` counts an answer once, queues it for the cache and for the caller, and for every other row of the
  run waiting on the same request; `_flush` stores the answers of one
  event-loop tick in one transaction and hands them on only once committed, so a row the caller sees
  survives `kill -9`;
* the circuit breaker: a window of mostly failing calls stops the run.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from factory.llm.pricing import Price
from factory.llm.provider import CallError
from factory.llm.stats import empty_reply
from factory.llm.tokens import prompt_token_bound
from factory.llm.types import ChatRequest, Completion

# Without a response cache, the answers of a run are remembered in memory (for duplicate requests) up to this many.
MEMO_MAX = 100_000

if TYPE_CHECKING:
    from factory.llm.cache import ResponseCache
    from factory.llm.limits import Budget
    from factory.llm.provider import Provider
    from factory.llm.settings import RunSettings
    from factory.llm.stats import RunStats


class Ledger:
    provider: Provider
    settings: RunSettings
    cache: ResponseCache | None
    price: Price | None
    stats: RunStats
    budget: Budget
    _bought: set[int]
    _memo: dict[str, Completion]
    _waiters: dict[str, list[int]]

    def _open_books(self) -> None:
        """Fresh per-run state (`LLM.stream` calls it before anything is sent)."""
        self._abort: CallError | BaseException | None = None
        self._budget_hit = False
        self._window: deque[bool] = deque(maxlen=self.settings.breaker_window)
        self._window_failures = 0  # kept as a count: the breaker is checked after every answer
        self._unsaved: dict[str, Completion] = {}
        self._waiters = {}
        self._ready: list[tuple[int, Completion]] = []
        self._timer: asyncio.Handle | None = None

    # -- budget ------------------------------------------------------------------------------------
    async def _reserve(self, r: ChatRequest) -> float | None:
        """Reserve the worst-case cost of `r` (awaiting a shared ledger); None when it does not fit the budget."""
        if self.settings.budget_usd is None or self.price is None:
            return 0.0
        worst = self._worst(r, self.price)
        return worst if await self.budget.reserve(worst) else None

    def _worst(self, r: ChatRequest, price: Price) -> float:
        return price.cost(self._prompt_bound(r), r.max_tokens * r.n)

    def _prompt_bound(self, r: ChatRequest) -> int:
        """Prompt tokens `r` can be billed for: an upper bound, times `n` where each sample is its own call."""
        samples = r.n if self.provider.prompt_per_sample else 1
        return prompt_token_bound(r, self.provider.model) * samples

    def _reserve_at(self, r: ChatRequest, price: Price | None) -> float | None:
        """Reserve the worst-case cost of `r` at `price` against the budget; None when it does not fit."""
        if self.settings.budget_usd is None or price is None:
            return 0.0
        worst = self._worst(r, price)
        return worst if self.budget.try_reserve(worst) else None

    # -- answers -----------------------------------------------------------------------------------
    def _invalid(self, r: ChatRequest, c: Completion) -> str | None:
        """Why an answer is unusable: empty, or breaking the request's schema (None when fine); its cost is
        counted, since it was paid for."""
        problem = empty_reply(c)
        if problem is None and r.schema is not None:
            from factory.llm.structured import InvalidOutput

            try:
                for text in c.texts or [None]:
                    r.schema.validate(text)
            except InvalidOutput as exc:
                problem = str(exc)
        if problem is None:
            return None
        self.stats.invalid += 1
        usd = self.price.cost(c.prompt_tokens, c.completion_tokens) if self.price is not None else 0.0
        self.stats.prompt_tokens += c.prompt_tokens
        self.stats.completion_tokens += c.completion_tokens
        self.stats.usd += usd
        self.budget.settle(0.0, usd)  # paid, whether or not the reply is usable
        return problem

    def _finish(self, i: int, key: str, c: Completion, reserved: float, queue: asyncio.Queue,
                answered: bool = False, price: Price | None = None) -> None:
        """Count, cache and hand on one answer. `answered`: a failed row whose call worked (a reply that broke its
        schema), which the circuit breaker, watching the API, counts as a success."""
        stats = self.stats
        spent = 0.0
        others = self._waiters.pop(key, [])  # rows of this run that sent the same request: the same answer
        if c.error is None:
            if self.price is not None:
                c.cost_usd = (price or self.price).cost(c.prompt_tokens, c.completion_tokens)
                if c.prompt_tokens + c.completion_tokens <= 0 and reserved > 0:
                    c.cost_usd = reserved  # no usage reported: assume the worst the call could have cost
            if self.cache is not None:
                self._unsaved[key] = c
            else:
                self._remember(key, c)
            self._bought.add(tag(key))
            stats.answered += 1
            stats.shared += len(others)
            stats.prompt_tokens += c.prompt_tokens
            stats.completion_tokens += c.completion_tokens
            stats.usd += c.cost_usd
            spent = c.cost_usd
        else:
            stats.failed += 1 + len(others)
        self.budget.settle(reserved, spent)  # one step: a shared ledger never sees the money freed but not spent
        self._record_call(c.error is None or answered, c)
        self._ready.append((i, c))
        self._ready.extend((j, c) for j in others)
        if self._timer is None:  # one cache transaction for all answers that arrive in this loop tick
            self._timer = asyncio.get_running_loop().call_soon(self._flush, queue)

    def _flush(self, queue: asyncio.Queue) -> None:
        """Store the answers of this tick in one transaction, then hand them on: a row counts as done only once it
        is durable, so at a `kill -9` only the calls in flight are lost."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._unsaved:
            self.cache.put_many(list(self._unsaved.items()))
            self._unsaved = {}
        for item in self._ready:
            queue.put_nowait(item)
        self._ready = []

    def _remember(self, key: str, c: Completion) -> None:
        """Without a cache, keep this run's answers (up to MEMO_MAX) for the duplicates still to come."""
        self._memo[key] = c
        if len(self._memo) > MEMO_MAX:
            del self._memo[next(iter(self._memo))]

    async def _settle(self, queue: asyncio.Queue) -> None:
        """Every answer so far stored and handed on (before a producer ends, before a batch is forgotten)."""
        self._flush(queue)

    # -- the circuit breaker -------------------------------------------------------------------------
    def _record_call(self, worked: bool, last: Completion) -> None:
        w = self._window
        if len(w) == w.maxlen and not w[0]:
            self._window_failures -= 1  # the oldest call leaves the window
        w.append(worked)
        if not worked:
            self._window_failures += 1
        if len(w) >= min(10, w.maxlen or 10) and self._window_failures / len(w) >= \
                self.settings.breaker_failure_rate and self._abort is None:
            self._abort = CallError(f"{self._window_failures} of the last {len(w)} calls failed; last error: "
                                    f"{last.error or 'unknown'}")


def tag(key: str) -> int:
    """A request key's first 64 bits (keys are sha256 hex): what a run remembers of the requests it bought."""
    return int(key[:16], 16)
