"""How an LLM run turns requests into answers: remote calls with retries, batch jobs, local batches.

Part of `LLM` (factory.llm.runner). Each producer takes the requests a chunk at a time, sends cached answers
straight on (resume), and puts every other answer on the run's queue through the ledger (`_finish`), then
`_DONE`. A retry waits *outside* its concurrency slot, so a 429's `Retry-After` never idles the pool, and
then goes ahead of first attempts (`Gate`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterable

from factory.llm.feed import RequestFeed
from factory.llm.ledger import Ledger, tag
from factory.llm.provider import CallError
from factory.llm.stats import approx_tokens
from factory.llm.types import ChatRequest, Completion

DONE = object()
CHUNK = 512


class Producers(Ledger):
    def key(self, request: ChatRequest) -> str:
        return request.cache_key(self.provider.name, self.provider.model)

    def _answers(self, keys: list[str]) -> dict[str, Completion]:
        """The known answers of `keys`: this tick's (not stored yet), then the cache's, or this run's memory."""
        found = {k: self._unsaved[k] for k in keys if k in self._unsaved}
        rest = [k for k in keys if k not in found]
        if self.cache is not None:
            found.update(self.cache.get_many(rest) if rest else {})
        else:
            found.update((k, self._memo[k]) for k in rest if k in self._memo)
        return found

    def _todo(self, chunk: list[tuple[int, ChatRequest]], queue: asyncio.Queue) -> list[tuple[int, ChatRequest, str]]:
        """(index, request, key) of each distinct request not answered yet; answers already known (cached, or
        bought earlier in this run) go straight to the queue, and a request already in flight waits for its answer.
        """
        keys = [self.key(r) for _, r in chunk]  # hashed once: the key is a sha256 of the request's JSON
        use_cache = self.cache is not None and not self.settings.refresh
        # --refresh and --no-cache ask again what earlier runs answered, but never what this run has already bought
        hits = self._answers(keys if use_cache else [k for k in keys if tag(k) in self._bought])
        todo = []
        for (i, r), key in zip(chunk, keys, strict=True):
            if key in self._waiters:  # the same request is on its way for another row: one call answers both
                self._waiters[key].append(i)
                continue
            c = hits.get(key)
            if c is None:
                self._waiters[key] = []
                todo.append((i, r, key))
                continue
            if tag(key) in self._bought:  # paid for (or counted) once already in this run
                self.stats.shared += 1
            else:
                self._bought.add(tag(key))
                self.stats.cached += 1
                self.stats.cached_usd += c.cost_usd
                self.stats.cached_prompt_tokens += c.prompt_tokens
                self.stats.cached_completion_tokens += c.completion_tokens
            queue.put_nowait((i, c))
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
            await self._settle(queue)
            queue.put_nowait(DONE)

    async def _one(self, i: int, r: ChatRequest, key: str, reserved: float, queue: asyncio.Queue) -> None:
        """One row: its call, retried as the rules say, until it is answered or failed."""
        s = self.settings
        attempt = invalid = 0
        while True:
            if self._abort is not None:
                self.budget.settle(reserved)
                return
            if self.limiter.active:
                await self.limiter.acquire(approx_tokens(r) + r.max_tokens * r.n)
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
            await self._settle(queue)
            queue.put_nowait(DONE)

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
            await self._settle(queue)
            queue.put_nowait(DONE)

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
