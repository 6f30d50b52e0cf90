"""A request feed: requests handed to a running `LLM.stream` while it runs, for stages of several steps.

A multi-step scheme (Evol-Instruct's rounds, a response after an evolution) would otherwise wait for the
slowest row of one step before it starts the next, leaving the pool idle at each step's tail. With a feed,
a row's next request is queued the moment its previous answer arrives, so one stream, one pool and one
progress bar serve all steps:

    feed = RequestFeed()
    for row in rows:
        pending[feed.put(first_request(row))] = row
    async for index, answer in llm.stream(feed):
        nxt = next_request(pending.pop(index), answer)
        if nxt is not None:
            pending[feed.put(nxt)] = ...
        if not pending:
            feed.close()

`put` returns the request's index in the stream (0, 1, 2, ... in the order of `put`).
"""

from __future__ import annotations

import asyncio

from factory.llm.types import ChatRequest

_CLOSED = object()


class RequestFeed:
    def __init__(self) -> None:
        self._queue: asyncio.Queue = asyncio.Queue()
        self._count = 0
        self._closed = False

    def put(self, request: ChatRequest) -> int:
        if self._closed:
            raise RuntimeError("put() on a closed RequestFeed")
        index = self._count
        self._count += 1
        self._queue.put_nowait((index, request))
        return index

    def close(self) -> None:
        """No more requests: the stream ends once those already put are answered."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_CLOSED)

    async def take(self, most: int) -> list[tuple[int, ChatRequest]] | None:
        """Waits for at least one request, returns up to `most` of those queued; None once closed and empty."""
        first = await self._queue.get()
        if first is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # later takes see the end too
            return None
        items = [first]
        while len(items) < most and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _CLOSED:
                self._queue.put_nowait(_CLOSED)
                break
            items.append(item)
        return items
