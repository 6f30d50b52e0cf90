"""Batch mode (`--batch`): the requests of a run go to the provider's batch API at half the online price.

`BatchJob(llm, todo, queue).run()` is what `LLM.stream` runs instead of online calls when `RunSettings.batch`
is set. The provider writes each request as a line of its batch input (`Provider.batch_lines`), submits
(`batch_submit`), reports status (`batch_poll`) and returns results by `custom_id` (`batch_results`).
Here, once for every provider:

* **Split under limits.** Distinct requests are cut into batches of at most the provider's request count and
  bytes (OpenAI 50,000 / 200 MB, Anthropic 100,000 / 256 MB; lower them with the provider options
  `batch_max_requests` / `batch_max_bytes`), all submitted and polled at once.
* **Resumable.** Each batch id and its `custom_id -> request key` map is written to the response cache's
  database the moment the batch is accepted. A rerun (after a crash, `kill -9`, a closed laptop) finds the
  requests it still needs in a recorded batch and polls that batch instead of submitting again; answers
  already cached are never submitted at all.
* **Polled with backoff**: every `batch_poll_s` (provider option, default 5 s), growing to 60 s.
* **Retries.** A request that expired or failed retryably (429, 5xx), or whose reply broke its schema, goes
  into a follow-up batch, up to `batch_retries` times; then it is kept as a failed row with the reason.
* **Cost**: answers are priced at the batch price (`Price.batch()`, 50 %).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from factory.llm.provider import CallError
from factory.llm.types import ChatRequest, Completion

MAX_POLL_S = 60.0


@dataclass
class BatchState:
    """A batch as the provider reports it: `status` in its own words; `done` once results can be read."""

    status: str
    done: bool
    finished: int = 0  # requests the provider has finished (succeeded or failed)
    total: int = 0


@dataclass
class BatchResult:
    """The outcome of one request in a finished batch; `completion.error` set when it failed."""

    completion: Completion
    retryable: bool = False


@dataclass
class _Group:
    request: ChatRequest
    indices: list[int] = field(default_factory=list)
    reserved: float = 0.0


def custom_id(key: str) -> str:
    """A request's id in a batch: stable across runs, within both APIs' limits (64 chars of [A-Za-z0-9_-])."""
    return f"r{key[:48]}"


class BatchJob:
    def __init__(self, llm: Any, todo: list[tuple[int, ChatRequest, str]], queue: asyncio.Queue):
        self.llm = llm
        self.provider = llm.provider
        self.queue = queue
        self.groups: dict[str, _Group] = {}
        for i, r, key in todo:
            self.groups.setdefault(key, _Group(r)).indices.append(i)
        self.cache = llm.cache
        self.spec = llm.spec
        self.price = llm.price.batch() if llm.price is not None else None
        self.stats = llm.stats

    async def run(self) -> None:
        pending = self.cache.pending_batches(list(self.groups), self.spec) if self.cache is not None else {}
        resumed = sorted({bid for bid, _ in pending.values()})
        new = [k for k in self.groups if k not in pending]
        fresh = []
        for key in new:
            reserved = self.llm._reserve_at(self.groups[key].request, self.price)
            if reserved is None:
                self.llm._budget_hit = True
                break
            self.groups[key].reserved = reserved
            fresh.append(key)
        for key in pending:
            self.groups[key].reserved = self.llm._reserve_at(self.groups[key].request, self.price) or 0.0
        tasks = [self._watch(bid, self.cache.batch_members(bid), 0) for bid in resumed]
        tasks += [self._submit_and_watch(chunk, 0) for chunk in self._split(fresh)]
        self.stats.batches_resumed += len(resumed)
        await asyncio.gather(*tasks)

    def _split(self, keys: list[str]) -> Iterator[list[str]]:
        """Chunks of keys whose batch input stays under the provider's request and byte limits."""
        import json

        max_requests, max_bytes = self.provider.batch_limits()
        chunk: list[str] = []
        size = lines = 0
        for key in keys:
            body = self.provider.batch_lines(self.groups[key].request, custom_id(key))
            n = len(body)
            b = sum(len(json.dumps(line, ensure_ascii=False).encode()) + 1 for line in body)
            if chunk and (lines + n > max_requests or size + b > max_bytes):
                yield chunk
                chunk, size, lines = [], 0, 0
            chunk.append(key)
            size += b
            lines += n
        if chunk:
            yield chunk

    async def _submit_and_watch(self, keys: list[str], attempt: int) -> None:
        lines = [line for key in keys for line in self.provider.batch_lines(self.groups[key].request, custom_id(key))]
        members = {custom_id(key): key for key in keys}
        bid = await self._with_retries(self.provider.batch_submit, lines)
        if bid is None:
            return  # the run stops with the reason (`LLM._abort`); nothing was recorded, a rerun submits again
        if self.cache is not None:
            self.cache.record_batch(bid, self.spec, members)
        self.stats.batches_submitted += 1
        self.stats.batch_status[bid] = BatchState("submitted", False, 0, len(keys))
        await self._watch(bid, members, attempt)

    async def _watch(self, bid: str, members: dict[str, str], attempt: int) -> None:
        delay = self.provider.batch_poll_s
        while True:
            state = await self._with_retries(self.provider.batch_poll, bid)
            if state is None:
                return  # the run stops (fatal error); the batch stays recorded for the rerun
            self.stats.batch_status[bid] = state
            self.llm._refresh_progress()
            if state.done:
                break
            await asyncio.sleep(delay * random.uniform(0.9, 1.1))
            delay = min(max(MAX_POLL_S, self.provider.batch_poll_s), delay * 1.5)
        results = await self._with_retries(self.provider.batch_results, bid)
        if results is None:
            return
        again = []
        extra = []  # answers for requests of a resumed batch that this run no longer needs: cache them anyway
        for cid, key in members.items():
            result = results.get(cid) or BatchResult(Completion(error="no result for the request in its batch"),
                                                     retryable=True)
            c = result.completion
            group = self.groups.get(key)
            if group is None:
                if c.error is None:
                    extra.append((key, c))
                continue
            retryable = result.retryable
            if c.error is None:
                problem = self.llm._invalid(group.request, c)
                if problem is None:
                    self._answer(key, c)
                    continue
                c, retryable = Completion(error=problem, texts=c.texts, model=c.model), True
            if retryable and attempt < self.llm.settings.batch_retries:
                again.append(key)
                self.stats.retries += 1
            else:
                self._fail(key, c.error or "failed", c)
        if extra and self.cache is not None:
            self.cache.put_many(extra)
        if self.cache is not None:
            await self.llm._settle(self.queue)  # the answers are stored before the batch is forgotten
            self.cache.finish_batch(bid)
        self.stats.batches_done += 1
        for chunk in self._split(again):
            await self._submit_and_watch(chunk, attempt + 1)

    def _answer(self, key: str, c: Completion) -> None:
        group = self.groups[key]
        first, *rest = group.indices
        self.llm._finish(first, key, c, group.reserved, self.queue, price=self.price)
        for i in rest:  # the same request twice in a run: one line in the batch, one answer for both rows
            self.stats.shared += 1
            self.llm._ready.append((i, c))

    def _fail(self, key: str, error: str, c: Completion | None = None) -> None:
        group = self.groups[key]
        failed = Completion(error=f"batch: {error}", texts=c.texts if c else [], model=self.provider.model)
        for n, i in enumerate(group.indices):
            self.llm._finish(i, key, failed, group.reserved if n == 0 else 0.0, self.queue, answered=True)

    async def _with_retries(self, method: Any, arg: Any) -> Any:
        """A batch API call with the run's retry rules; None when the run must stop (fatal or out of retries)."""
        s = self.llm.settings
        for attempt in range(s.max_retries + 1):
            if self.llm._abort is not None:
                return None
            try:
                self.stats.sent += 1
                return await method(arg)
            except CallError as err:
                if err.fatal or not err.retryable or attempt == s.max_retries:
                    self.llm._abort = err
                    return None
                self.stats.retries += 1
                delay = err.retry_after if err.retry_after is not None else \
                    min(s.backoff_max_s, s.backoff_base_s * 2 ** attempt) * random.uniform(0.5, 1.5)
                await asyncio.sleep(delay)
        return None
