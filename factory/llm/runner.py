"""The shared LLM layer: one place for concurrency, rate limits, retries, resume, budget and cost.

`LLM.stream(requests)` yields `(index, Completion)` as answers arrive, in any order:

* answers already in the response cache are yielded first and cost no request (this is resume);
* the rest run with at most `concurrency` calls in flight; a retry waits *outside* its slot, so a
  429's `Retry-After` never idles the pool, and then goes ahead of first attempts in the queue;
* 429, 5xx, timeouts, dropped connections and malformed bodies are retried with exponential backoff and
  jitter (or the server's `Retry-After`); 400-class errors are not; a row that still fails is yielded
  with `error` set, never dropped;
* a bad key or a missing model stops the run at once, and so does a window of mostly failing calls
  (the circuit breaker) — nothing failed is cached, so a rerun retries it;
* with a budget, each call reserves its worst-case cost before it is sent (an upper bound on the prompt's
  tokens, once per sample where the API has no `n`, plus `max_tokens` per sample; again before each paid
  retry), so the run stops before it could exceed the budget; an answer is settled at its reported usage, or
  at its reservation when the provider reports none; `BudgetExhausted` is raised after every paid-for
  answer has been yielded and cached;
* an empty reply (no choices, `null` or blank text) is a failure like a reply that breaks its schema:
  asked again, then a failed row, never cached;
* the same request twice in a run (two rows that render to one prompt) is one call, paid and counted once:
  its answer goes to every row that asked (counted `shared`), whether it is still in flight, was answered
  earlier in the run, or came from the cache.

The machinery lives beside this file: `producers` (calls, batches, local batches), `ledger` (budget,
validation, the cache writes, the circuit breaker), `stats` (counters and the run's exceptions).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from factory.errors import BadInput
from factory.llm.cache import ResponseCache
from factory.llm.feed import RequestFeed
from factory.llm.limits import Budget, Gate, RateLimiter
from factory.llm.pricing import Price
from factory.llm.producers import DONE, Producers
from factory.llm.progress import Progress
from factory.llm.provider import CallError, Provider
from factory.llm.settings import RunSettings
from factory.llm.stats import BudgetExhausted, RunAborted, RunStats, approx_tokens, empty_reply
from factory.llm.types import ChatRequest, Completion

__all__ = ["LLM", "BudgetExhausted", "RunAborted", "RunSettings", "RunStats", "approx_tokens", "empty_reply",
           "run_sync"]


class LLM(Producers):
    """A provider plus the run machinery. Make one with `factory.llm.load_llm(spec, ...)`."""

    def __init__(self, provider: Provider, settings: RunSettings | None = None, cache: ResponseCache | None = None,
                 price: Price | None = None):
        self.provider = provider
        self.settings = settings or RunSettings()
        self.cache = cache if self.settings.cache else None
        self.price = price
        self.stats = RunStats()
        # Both swappable: the Ray executor gives every worker's LLM the same run-wide ledger and buckets.
        self.limiter = RateLimiter(self.settings.rpm, self.settings.tpm)
        self.budget = Budget(self.settings.budget_usd)
        self._progress: Progress | None = None
        # Run-wide, across `stream` calls: what this run has bought (its keys' first 64 bits: a million fit in
        # ~60 MB), and without a cache the answers themselves, so a duplicate request is never paid twice.
        self._bought: set[int] = set()
        self._memo: dict[str, Completion] = {}
        self._waiters: dict[str, list[int]] = {}  # in flight: request key -> the other rows waiting for its answer
        if self.settings.batch and not provider.batch_api:
            raise BadInput(f"--batch needs a provider with a batch API (openai:, anthropic:), not {provider.spec}")

    @property
    def spec(self) -> str:
        return self.provider.spec

    # -- public API --------------------------------------------------------------------------------
    async def generate(self, requests: Iterable[ChatRequest]) -> list[Completion]:
        """All answers, in request order (failed rows carry `error`)."""
        requests = list(requests)
        out: list[Completion | None] = [None] * len(requests)
        async for i, completion in self.stream(requests, total=len(requests)):
            out[i] = completion
        return out  # type: ignore[return-value]

    def generate_sync(self, requests: Iterable[ChatRequest]) -> list[Completion]:
        """`generate` for scripts: runs its own event loop."""
        return run_sync(self._generate_and_close(requests))

    async def _generate_and_close(self, requests: Iterable[ChatRequest]) -> list[Completion]:
        try:
            return await self.generate(requests)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        await self.provider.aclose()

    def forget(self, requests: Iterable[ChatRequest]) -> None:
        """Take these requests' answers out of the cache: the caller could not use them (a judge's reply
        without a verdict), so a rerun must ask again rather than replay a failure as a success."""
        keys = [self.key(r) for r in requests]
        if self.cache is not None:
            self.cache.delete(keys)
        for key in keys:
            self._memo.pop(key, None)

    def estimate(self, requests: Iterable[ChatRequest]) -> dict[str, float]:
        """What a run would send and cost at most: for `--dry-run`."""
        requests = list(requests)
        keys = [self.key(r) for r in requests]
        cached = self.cache.get_many(keys) if self.cache and not self.settings.refresh else {}
        todo = list({key: r for r, key in zip(requests, keys, strict=True) if key not in cached}.values())  # distinct
        prompt = sum(self._prompt_bound(r) for r in todo)
        completion = sum(r.max_tokens * r.n for r in todo)
        usd = self.price.cost(prompt, completion) if self.price else float("nan")
        batch_usd = self.price.batch().cost(prompt, completion) if self.price else float("nan")
        return {"requests": len(todo), "cached": len(requests) - len(todo), "prompt_tokens": prompt,
                "max_completion_tokens": completion, "max_usd": usd, "max_usd_batch": batch_usd,
                "batch": self.settings.batch}

    async def stream(self, requests: Iterable[ChatRequest] | RequestFeed, total: int | None = None
                     ) -> AsyncIterator[tuple[int, Completion]]:
        """(index, answer) as answers arrive. `requests` may be a `RequestFeed` that the caller keeps filling."""
        if self.settings.budget_usd is not None and self.price is None:
            raise BadInput(f"no price is known for {self.spec}, so --budget cannot be enforced; "
                           "add it under `prices:` in $FACTORY_HOME/config.yaml")
        self.provider.ready()
        self._open_books()
        self._gate = Gate(self.settings.concurrency)
        queue: asyncio.Queue = asyncio.Queue()
        if self.provider.local:
            produce = self._produce_local
        else:
            produce = self._produce_batch if self.settings.batch else self._produce_remote
        progress = self._progress = Progress(total, self.spec, enabled=self.settings.progress)
        producer = asyncio.create_task(produce(requests, queue))
        try:
            while (item := await queue.get()) is not DONE:
                progress.update(self.stats)
                yield item
            await producer
        finally:
            if not producer.done():
                producer.cancel()
            progress.close(self.stats)
        if isinstance(self._abort, CallError):
            raise RunAborted(f"stopped: {self._abort} ({self.stats.answered + self.stats.cached} rows answered "
                             f"are kept in the cache; fix the cause and rerun)")
        if self._abort is not None:
            raise self._abort
        if self._budget_hit:
            raise BudgetExhausted(
                f"budget of ${self.settings.budget_usd:g} reached: ${self.stats.usd:.4f} spent, "
                f"{self.stats.answered + self.stats.cached} rows answered and cached; "
                "rerun with a higher --budget to continue (answered rows are not paid for again)")

    def _refresh_progress(self) -> None:
        if self._progress is not None:
            self._progress.refresh(self.stats)


def run_sync(coro):
    """Run a coroutine on uvloop when available (it is faster for many sockets)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)
