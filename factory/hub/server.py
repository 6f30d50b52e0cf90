"""`HubServer`: the loopback Hub running in a background thread with its own event loop.

    with HubServer(tmp_path / "hub", port=HUB_PORT) as hub:
        HfApi(endpoint=hub.url, token="hf_test_token").create_repo("testuser/demo")

All state lives under `root_dir`, so a server started again on the same directory sees the same repos.
"""

from __future__ import annotations

import asyncio
import os
import threading
from types import TracebackType

from aiohttp import web

from .app import create_app
from .faults import Faults
from .storage import HubStorage

DEFAULT_TOKENS = {"hf_test_token": "testuser"}
DEFAULT_ORGS = {"testuser": ["testorg"]}


class HubServer:
    """A Hub-compatible HTTP server on 127.0.0.1 (`port=0` picks a free port; see `url`)."""

    def __init__(
        self,
        root_dir: str | os.PathLike[str],
        port: int = 0,
        tokens: dict[str, str] | None = None,
        orgs: dict[str, list[str]] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.root_dir = root_dir
        self.host = host
        self.port = port
        self.tokens = dict(DEFAULT_TOKENS if tokens is None else tokens)
        self.orgs = dict(DEFAULT_ORGS if orgs is None else orgs)
        self.storage = HubStorage(root_dir)
        self.faults = Faults()  # tests: `hub.faults.add(503, path=r"/commit/")`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _start_site(self) -> None:
        self._runner = web.AppRunner(create_app(self.storage, self.tokens, self.orgs, self.faults), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]  # the port `port=0` was given

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def start(self, timeout: float = 30.0) -> HubServer:
        """Start serving in a daemon thread; returns once the port is bound (raises if it cannot be)."""
        if self._thread is not None:
            return self
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name=f"loopback-hub-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("loopback Hub did not start in time")
        if self._error is not None:
            self._thread = None
            raise RuntimeError(f"loopback Hub could not start on {self.host}:{self.port}") from self._error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread; the data under `root_dir` stays."""
        if self._thread is None or self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._thread, self._loop, self._runner = None, None, None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
