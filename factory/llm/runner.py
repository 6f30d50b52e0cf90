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
  asked again, then a failed row, never cached.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from factory.errors import BadInput, FactoryError
from factory.llm.cache import ResponseCache
from factory.llm.feed import RequestFeed
from factory.llm.limits import Budget, Gate, RateLimiter
from factory.llm.pricing import Price
from factory.llm.progress import Progress
from factory.llm.provider import CallError, Provider
from factory.llm.settings import RunSettings
from factory.llm.tokens import prompt_token_bound
from factory.llm.types import ChatRequest, Completion
from factory.records import Cost

_DONE = object()
CHUNK = 512


class BudgetExhausted(FactoryError):
    pass


class RunAborted(FactoryError):
    pass


@dataclass
class RunStats:
    sent: int = 0  # HTTP calls made, retries included
    answered: int = 0  # new answers
    cached: int = 0  # answers taken from the cache
    failed: int = 0  # rows yielded with an error
    retries: int = 0
    invalid: int = 0  # replies that broke their schema (each retried or failed)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0  # spent in this run
    cached_usd: float = 0.0  # what the cached answers cost when they were bought
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    batches_submitted: int = 0
    batches_resumed: int = 0  # batches of an earlier run polled again instead of resubmitted
    batches_done: int = 0
    batch_status: dict = field(default_factory=dict)  # batch id -> its latest `BatchState`

    def cost(self) -> Cost:
        """What the answers of this run cost in all, including answers bought by an earlier, interrupted run."""
        return Cost(requests=self.answered + self.cached,
                    prompt_tokens=self.prompt_tokens + self.cached_prompt_tokens,
                    completion_tokens=self.completion_tokens + self.cached_completion_tokens,
                    usd=round(self.usd + self.cached_usd, 6))


def approx_tokens(request: ChatRequest) -> int:
    """A cheap upper-ish estimate of prompt tokens (4 characters a token), for limits and budgets."""
    chars = sum(len(m.get("content") or "") for m in request.messages) + len(request.system or "")
    return chars // 4 + 4 * (len(request.messages) + 1)


class LLM:
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
        if self.settings.batch and not provider.batch_api:
            raise BadInput(f"--batch needs a provider with a batch API (openai:, anthropic:), not {provider.spec}")

    @property
    def spec(self) -> str:
        return self.provider.spec

    def key(self, request: ChatRequest) -> str:
        return request.cache_key(self.provider.name, self.provider.model)

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
        if self.cache is not None:
            self.cache.delete([self.key(r) for r in requests])

    def estimate(self, requests: Iterable[ChatRequest]) -> dict[str, float]:
        """What a run would send and cost at most: for `--dry-run`."""
        requests = list(requests)
        cached = self._lookup(requests) if self.cache and not self.settings.refresh else {}
        todo = [r for r in requests if self.key(r) not in cached]
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
        self._abort: CallError | BaseException | None = None
        self._budget_hit = False
        self._window: deque[bool] = deque(maxlen=self.settings.breaker_window)
        self._gate = Gate(self.settings.concurrency)
        self._unsaved: list[tuple[str, Completion]] = []
        self._ready: list[tuple[int, Completion]] = []
        self._flush_scheduled = False
        queue: asyncio.Queue = asyncio.Queue()
        if self.provider.local:
            produce = self._produce_local
        else:
            produce = self._produce_batch if self.settings.batch else self._produce_remote
        progress = self._progress = Progress(total, self.spec, enabled=self.settings.progress)
        producer = asyncio.create_task(produce(requests, queue))
        try:
            while (item := await queue.get()) is not _DONE:
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

    # -- producers ---------------------------------------------------------------------------------
    def _lookup(self, requests: list[ChatRequest]) -> dict[str, Completion]:
        return self.cache.get_many(self.key(r) for r in requests) if self.cache else {}

    def _todo(self, chunk: list[tuple[int, ChatRequest]], queue: asyncio.Queue) -> list[tuple[int, ChatRequest, str]]:
        """(index, request, key) of each request not answered yet; cached answers go straight to the queue."""
        use_cache = self.cache is not None and not self.settings.refresh
        hits = self._lookup([r for _, r in chunk]) if use_cache else {}
        todo = []
        for i, r in chunk:
            key = self.key(r)
            if key in hits:
                c = hits[key]
                self.stats.cached += 1
                self.stats.cached_usd += c.cost_usd
                self.stats.cached_prompt_tokens += c.prompt_tokens
                self.stats.cached_completion_tokens += c.completion_tokens
                queue.put_nowait((i, c))
            else:
                todo.append((i, r, key))
        return todo

    async def _chunks(self, requests: Iterable[ChatRequest] | RequestFeed, queue: asyncio.Queue, most: int = CHUNK
                      ) -> AsyncIterator[list[tuple[int, ChatRequest, str]]]:
        """The requests still to send, a chunk at a time; from a `RequestFeed`, what has been put so far."""
        if isinstance(requests, RequestFeed):
            while (items := await requests.take(most)) is not None:
                yield self._todo(items, queue)
            return
        chunk: list[tuple[int, ChatRequest]] = []
        for item in enumerate(requests):
            chunk.append(item)
            if len(chunk) >= CHUNK:
                yield self._todo(chunk, queue)
                chunk = []
        if chunk:
            yield self._todo(chunk, queue)

    async def _produce_remote(self, requests: Iterable[ChatRequest], queue: asyncio.Queue) -> None:
        pending: set[asyncio.Task] = set()
        # Tasks alive at once: the calls in flight plus those waiting out a backoff. A semaphore, not
        # asyncio.wait(): waiting on a large set costs O(set) per finished call.
        slots = asyncio.Semaphore(self.settings.concurrency * 2)

        def finished(task: asyncio.Task) -> None:
            pending.discard(task)
            slots.release()
            if not task.cancelled() and task.exception() is not None and self._abort is None:
                self._abort = task.exception()  # a bug, not a call failure: those are rows with errors

        try:
            async for todo in self._chunks(requests, queue):
                for i, r, key in todo:
                    if self._abort is not None or self._budget_hit:
                        break
                    reserved = await self._reserve(r)
                    if reserved is None:
                        self._budget_hit = True
                        break
                    await slots.acquire()
                    task = asyncio.create_task(self._one(i, r, key, reserved, queue))
                    pending.add(task)
                    task.add_done_callback(finished)
                if self._abort is not None or self._budget_hit:
                    break
            while pending:
                await asyncio.wait(set(pending))
        except BaseException:
            for t in list(pending):
                t.cancel()
            raise
        finally:
            self._flush(queue)
            queue.put_nowait(_DONE)

    async def _produce_batch(self, requests: Iterable[ChatRequest], queue: asyncio.Queue) -> None:
        from factory.llm.batch import BatchJob

        try:
            if isinstance(requests, RequestFeed):  # in waves: what has been put by the time the last wave ended
                async for todo in self._chunks(requests, queue, most=1 << 30):
                    if todo:
                        await BatchJob(self, todo, queue).run()
                    self._flush(queue)
                return
            todo = [item async for chunk in self._chunks(requests, queue) for item in chunk]
            if todo:
                await BatchJob(self, todo, queue).run()
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError) and self._abort is None:
                self._abort = exc
            raise
        finally:
            self._flush(queue)
            queue.put_nowait(_DONE)

    def _refresh_progress(self) -> None:
        if self._progress is not None:
            self._progress.refresh(self.stats)

    async def _produce_local(self, requests: Iterable[ChatRequest], queue: asyncio.Queue) -> None:
        try:
            async for todo in self._chunks(requests, queue):
                for start in range(0, len(todo), self.settings.batch_size):
                    batch = todo[start:start + self.settings.batch_size]
                    results, invalid = await self._local_batch(batch)
                    for k, ((i, _, key), c) in enumerate(zip(batch, results, strict=True)):
                        self._finish(i, key, c, 0.0, queue, answered=k in invalid)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self._abort = exc
            raise
        finally:
            self._flush(queue)
            queue.put_nowait(_DONE)

    async def _local_batch(self, batch: list[tuple[int, ChatRequest, str]]) -> tuple[list[Completion], set[int]]:
        """Answers of a local batch, and which broke their schema: those are generated again, up to the limit."""
        requests = [r for _, r, _ in batch]
        self.stats.sent += len(requests)
        results = await asyncio.to_thread(self.provider.complete_batch, requests)
        for tries in range(self.settings.schema_retries + 1):
            problems = {k: p for k, (r, c) in enumerate(zip(requests, results, strict=True))
                        if c.error is None and (p := self._invalid(r, c)) is not None}
            if not problems or tries == self.settings.schema_retries:
                break
            self.stats.retries += len(problems)
            self.stats.sent += len(problems)
            again = await asyncio.to_thread(self.provider.complete_batch, [requests[k] for k in problems])
            for k, c in zip(problems, again, strict=True):
                results[k] = c
        for k, problem in problems.items():
            results[k] = Completion(error=problem, texts=results[k].texts, model=results[k].model)
        return results, set(problems)

    # -- one call ----------------------------------------------------------------------------------
    async def _one(self, i: int, r: ChatRequest, key: str, reserved: float, queue: asyncio.Queue) -> None:
        s = self.settings
        tokens = approx_tokens(r) + r.max_tokens * r.n
        attempt = invalid = 0
        while True:
            if self._abort is not None:
                self.budget.settle(reserved)
                return
            if self.limiter.active:
                await self.limiter.acquire(tokens)
            await self._gate.acquire(urgent=attempt + invalid > 0)
            try:
                if self._abort is not None:
                    self.budget.settle(reserved)
                    return
                self.stats.sent += 1
                try:
                    completion = await self.provider.complete(r)
                    err = None
                except CallError as exc:
                    err = exc
            finally:
                self._gate.release()
            if err is None:
                problem = self._invalid(r, completion)
                if problem is None:
                    break
                # the reply was paid for but is empty or breaks its schema: ask again (a new sample), then fail
                invalid += 1
                failed = Completion(error=problem, texts=completion.texts, model=completion.model)
                if invalid > s.schema_retries:
                    self._finish(i, key, failed, reserved, queue, answered=True)
                    return
                # the next try is paid again: it needs a reservation of its own, within the budget
                self.budget.settle(reserved)
                reserved = await self._reserve(r)
                if reserved is None:
                    self._budget_hit = True
                    self._finish(i, key, failed, 0.0, queue, answered=True)
                    return
                self.stats.retries += 1
                continue
            if err.fatal or (err.unreachable and self.stats.answered == 0 and attempt >= 2):
                self._abort = err
                self.budget.settle(reserved)
                return
            if not err.retryable or attempt == s.max_retries:
                completion = Completion(error=str(err), model=self.provider.model)
                break
            self.stats.retries += 1
            if err.retry_after is not None:
                # capped: one `Retry-After: 86400` must not stall the run for a day
                delay = min(err.retry_after, s.backoff_max_s) * random.uniform(1.0, 1.1)
            else:
                delay = min(s.backoff_max_s, s.backoff_base_s * 2 ** attempt) * random.uniform(0.5, 1.5)
            attempt += 1
            await asyncio.sleep(delay)
        self._finish(i, key, completion, reserved, queue)

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
        spent = 0.0
        if c.error is None:
            if self.price is not None:
                c.cost_usd = (price or self.price).cost(c.prompt_tokens, c.completion_tokens)
                if c.prompt_tokens + c.completion_tokens <= 0 and reserved > 0:
                    c.cost_usd = reserved  # no usage reported: assume the worst the call could have cost
            if self.cache is not None:
                self._unsaved.append((key, c))
            self.stats.answered += 1
            self.stats.prompt_tokens += c.prompt_tokens
            self.stats.completion_tokens += c.completion_tokens
            self.stats.usd += c.cost_usd
            spent = c.cost_usd
        else:
            self.stats.failed += 1
        self.budget.settle(reserved, spent)  # one step: a shared ledger never sees the money freed but not spent
        self._window.append(c.error is None or answered)
        self._ready.append((i, c))
        if not self._flush_scheduled:  # one cache transaction for all answers that arrive in this loop tick
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, queue)
        self._check_breaker(c)

    def _flush(self, queue: asyncio.Queue) -> None:
        """Store the answers of this tick, then hand them on: a row counts as done only once it is durable."""
        self._flush_scheduled = False
        if self._unsaved:
            self.cache.put_many(self._unsaved)
            self._unsaved = []
        for item in self._ready:
            queue.put_nowait(item)
        self._ready = []

    def _check_breaker(self, last: Completion) -> None:
        w = self._window
        if len(w) >= min(10, w.maxlen or 10) and w.count(False) / len(w) >= self.settings.breaker_failure_rate:
            if self._abort is None:
                self._abort = CallError(f"{w.count(False)} of the last {len(w)} calls failed; last error: "
                                        f"{last.error or 'unknown'}")

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


def empty_reply(c: Completion) -> str | None:
    """Why a reply counts as empty (no choices, `null` or blank text), or None."""
    if not c.texts:
        return "empty reply: the API returned no choices"
    if any(t is None or not str(t).strip() for t in c.texts):
        return "empty reply: the model returned no text"
    return None


def run_sync(coro):
    """Run a coroutine on uvloop when available (it is faster for many sockets)."""
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:
        return asyncio.run(coro)
