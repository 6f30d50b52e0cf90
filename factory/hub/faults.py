"""Scripted server failures for tests: make the next N matching requests answer 5xx (or any status).

    hub.faults.add(503, method="POST", path=r"/commit/", times=2)   # the next two commits fail
    hub.faults.add(500, path=r"/commit/", after=True)              # the commit lands, its answer is lost

A fault is served like the Hub's own errors (JSON body, `X-Request-Id`), so the client's retry and error paths
run exactly as they would against a flaky Hub. `hits` records what was failed, for assertions.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from aiohttp import web


@dataclass
class Fault:
    status: int
    method: str | None
    path: re.Pattern[str] | None
    remaining: int
    after: bool
    retry_after: int | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or bool(self.path.search(path)))


class Faults:
    """The failures a server still has to serve; thread-safe (tests add them while the server runs)."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self.hits: list[tuple[str, str, int]] = []

    def add(
        self,
        status: int = 503,
        *,
        method: str | None = None,
        path: str | None = None,
        times: int = 1,
        after: bool = False,
        retry_after: int | None = None,
    ) -> Fault:
        """Fail the next `times` requests matching `method` and the regex `path` with `status`.

        `after=True` runs the request first and then answers the error (a response lost on the way back).
        """
        fault = Fault(
            status, method.upper() if method else None, re.compile(path) if path else None, times, after, retry_after
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.hits.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.matches(method, path):
                    fault.remaining -= 1
                    self.hits.append((method, path, fault.status))
                    return fault
        return None


def fault_response(fault: Fault) -> web.Response:
    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
    return web.json_response({"error": f"injected fault: HTTP {fault.status}"}, status=fault.status, headers=headers)


def middleware(faults: Faults):
    @web.middleware
    async def inject(request: web.Request, handler):
        fault = faults.take(request.method, request.rel_url.path)
        if fault is None:
            return await handler(request)
        if fault.after:
            await handler(request)
        return fault_response(fault)

    return inject
