"""A stub LLM server over real HTTP that the real `openai` and `anthropic` SDKs can talk to.

One `StubLLMServer` serves both APIs on 127.0.0.1:

* ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages`` (Anthropic), ``GET /v1/models``;
* the batch endpoints of both (OpenAI files + batches, Anthropic message batches): `llm_stub_batch`;
* ``GET /_stub/stats``, ``POST /_stub/reset``, ``GET|POST /_stub/config``: counters and runtime faults for
  tests in another process (no auth on these).

Replies, token counting and fault rules are in `factory.testing.llm_stub_core` (read its docstring); the
settings are the fields of `StubConfig`. What a fault looks like on the wire:

* ``429``: answered at once, provider error JSON, ``Retry-After: <retry_after>``;
* ``500`` (or any scripted status): provider error JSON after the usual latency;
* ``timeout``: the answer waits `hang_s` more seconds (a client timeout fires first);
* ``malformed``: 200, ``application/json``, the first half of the real body.
Bad keys (401) and missing models (404) are answered at once, before any fault.

In a test::

    with StubLLMServer(latency_s=0.2, script=["429"]) as stub:  # every request: first 429, then 200
        client = OpenAI(base_url=stub.openai_base_url, api_key="k")
        ...
        assert stub.stats()["by_status"] == {"429": 1, "200": 1}

As a process (benchmarks keep the stub off the client's CPU and GIL)::

    python -m factory.testing.llm_stub --port 0 --latency 0.2 --rate-429 0.05   # prints "READY http://..."
    proc, base_url = start_stub_process(latency=0.2, rate_429=0.05)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import threading
import traceback
import urllib.request
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from types import ModuleType
from typing import Any

from aiohttp import web

from factory.testing import llm_stub_anthropic, llm_stub_openai
from factory.testing.llm_stub_batch import BatchBook
from factory.testing.llm_stub_core import (
    FAULTS,
    OK,
    Responder,
    Stats,
    StubConfig,
    count_tokens,
    default_reply,
    make_choices,
    pick_fault,
    request_key,
    unit,
)

__all__ = [
    "StubConfig",
    "StubLLMServer",
    "count_tokens",
    "default_reply",
    "remote_configure",
    "remote_reset",
    "remote_stats",
    "request_key",
    "start_stub_process",
    "stop_stub_process",
]

_DIALECTS: dict[str, ModuleType] = {"/v1/chat/completions": llm_stub_openai, "/v1/messages": llm_stub_anthropic}


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(payload).encode()
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


class StubLLMServer:
    """An OpenAI- and Anthropic-compatible stub server; `with` runs it in a background thread.

    `config` and/or keyword options (any `StubConfig` field) set latency, faults, keys and models;
    `responder` replaces the default reply: it gets `Call.for_responder(i)` (a dict with `api`, `choice`,
    `model`, `system`, `messages`, `prompt`, ..., and the raw `body`) and returns the text of choice `i`,
    or a list with the texts of all choices. It runs on the server's event loop, so keep it quick.
    """

    def __init__(
        self,
        config: StubConfig | None = None,
        *,
        responder: Responder | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> None:
        self.config = (config or StubConfig()).replace(**options)
        self.responder = responder
        self.host, self.port = host, port
        self._stats = Stats()
        self._numbers = itertools.count(1)
        self._batches = BatchBook(self)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        # The anthropic SDK puts "/v1/messages" after its base URL itself.
        return self.base_url

    def stats(self) -> dict[str, Any]:
        """The counters (see `Stats.snapshot`, and `batches`/`files` uploaded): what `GET /_stub/stats` returns."""
        return {**self._stats.snapshot(), **self._batches.stats()}

    def reset(self) -> None:
        """Zero the counters (batches and files kept on the server stay); attempt numbers restart too, so a
        `script` applies afresh."""
        self._stats.reset()
        self._batches.created = self._batches.uploaded = self._batches.lines = 0

    def configure(self, **changes: Any) -> StubConfig:
        """Change latency, faults, keys ... while running; requests already waiting keep the old config."""
        self.config = self.config.replace(**changes)
        return self.config

    # -- running -----------------------------------------------------------------------------------

    def start(self) -> StubLLMServer:
        """Serve from a daemon thread with its own event loop; returns once the port is listening."""
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = _new_loop()
            try:
                loop.run_until_complete(self._serve(ready.set))
            except BaseException as exc:  # surfaces in start(); the thread itself has nobody to tell
                self._error = exc
            finally:
                ready.set()
                loop.close()

        self._thread = threading.Thread(target=run, name=f"stub-llm-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait()
        if self._error is not None:
            raise RuntimeError(f"stub LLM server failed to start: {self._error!r}") from self._error
        return self

    def stop(self) -> None:
        """Stop listening, cancel calls still waiting, and join the thread."""
        if self._thread is None:
            return
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=30)
        self._thread = None

    def __enter__(self) -> StubLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, started: Callable[[], object]) -> None:
        self._stopping = asyncio.Event()
        # handler_cancellation: a client that gives up on a hung call frees its handler at once.
        server = web.Server(self._handle, handler_cancellation=True, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=0.25)
        await runner.setup()
        # A deep backlog: 256 clients connecting at once must not overflow it (dropped SYNs cost 1 s each).
        site = web.TCPSite(runner, self.host, self.port, backlog=4096)
        try:
            await site.start()
            self.port = runner.addresses[0][1]
            started()
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    # -- requests ----------------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        dialect = _DIALECTS.get(request.path)
        if dialect is not None and request.method == "POST":
            return await self._call(request, dialect)
        if request.path == "/v1/models" and request.method == "GET":
            return self._models(request)
        if request.path.startswith(("/v1/files", "/v1/batches", "/v1/messages/batches")):
            return await self._batch(request)
        if request.path.startswith("/_stub/"):
            return await self._control(request)
        return _json(404, llm_stub_openai.error(404, f"no route {request.method} {request.path}"))

    async def _call(self, request: web.BaseRequest, dialect: ModuleType) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
            call = dialect.parse(body)
        except Exception as exc:
            return _json(400, dialect.error(400, f"invalid request body: {exc!r}"))
        config = self.config  # one snapshot per call, so a runtime change never splits a call
        key = request_key(body)
        attempt = self._stats.begin(dialect.API, key)
        status: int | None = None
        fault = OK
        usage = (0, 0)
        try:
            if not config.key_ok(_api_key(request)):
                status = 401
                return _json(401, dialect.error(401, "Incorrect API key provided (stub)."))
            if config.is_missing(call.model):
                status = 404
                return _json(404, dialect.error(404, f"The model `{call.model}` does not exist (stub)."))
            fault = pick_fault(config, key, attempt, raw)
            if fault == "429":
                status = 429
                headers = {"Retry-After": config.retry_after} if config.retry_after else None
                return _json(429, dialect.error(429, "Rate limit reached (stub)."), headers)
            delay = config.latency_s + (config.jitter_s * unit(key, attempt, "jitter") if config.jitter_s else 0.0)
            if fault == "timeout":
                delay += config.hang_s
            if delay > 0:
                await asyncio.sleep(delay)
            if fault not in (OK, *FAULTS) or fault == "500":
                status = int(fault)
                return _json(status, dialect.error(status, f"Injected server error {status} (stub)."))
            try:
                choices = make_choices(call, self.responder)
            except Exception:
                status = 500
                return _json(500, dialect.error(500, "responder raised:\n" + traceback.format_exc()))
            payload = json.dumps(dialect.render(call, choices, next(self._numbers))).encode()
            if fault == "malformed":
                payload = payload[: len(payload) // 2]
            status = 200
            usage = (call.prompt_tokens(), sum(c.tokens for c in choices))
            return web.Response(body=payload, content_type="application/json")
        finally:
            self._stats.end(key, status, fault, usage, (config.price_input, config.price_output))

    async def _batch(self, request: web.BaseRequest) -> web.StreamResponse:
        """The Files / Batch endpoints of both APIs (see `llm_stub_batch`)."""
        anthropic = request.path.startswith("/v1/messages/")
        dialect = llm_stub_anthropic if anthropic else llm_stub_openai
        if not self.config.key_ok(_api_key(request)):
            return _json(401, dialect.error(401, "Incorrect API key provided (stub)."))
        book, parts, method = self._batches, request.path.strip("/").split("/"), request.method
        if parts[:2] == ["v1", "files"]:
            if method == "POST" and len(parts) == 2:
                form = await request.post()
                upload = form.get("file")
                data = upload.file.read() if hasattr(upload, "file") else str(upload or "").encode()
                name = getattr(upload, "filename", "upload.jsonl")
                return _json(200, book.upload(name, data, str(form.get("purpose", ""))))
            if len(parts) >= 3 and parts[2] in book.files:
                if len(parts) == 4 and parts[3] == "content":
                    return web.Response(body=book.files[parts[2]], content_type="application/octet-stream")
                return _json(200, book.file_meta[parts[2]])
        elif not anthropic and parts[:2] == ["v1", "batches"]:
            if method == "POST" and len(parts) == 2:
                return _json(*book.create_openai(json.loads(await request.read())))
            batch = book.batches.get(parts[2]) if len(parts) >= 3 else None
            if batch is not None:
                if method == "POST" and parts[3:] == ["cancel"]:
                    batch.cancelled = True
                return _json(200, book.render_openai(batch))
        elif anthropic:
            if method == "POST" and len(parts) == 3:
                return _json(*book.create_anthropic(json.loads(await request.read())))
            batch = book.batches.get(parts[3]) if len(parts) >= 4 else None
            if batch is not None:
                if parts[4:] == ["results"]:
                    if batch.stage(self.config.batch_latency_s) != "done":
                        return _json(400, dialect.error(400, "batch has not ended (stub)"))
                    return web.Response(body=book.anthropic_results(batch), content_type="application/binary")
                return _json(200, book.render_anthropic(batch))
        return _json(404, dialect.error(404, f"no such batch resource {method} {request.path} (stub)"))

    def _models(self, request: web.BaseRequest) -> web.Response:
        if not self.config.key_ok(_api_key(request)):
            return _json(401, llm_stub_openai.error(401, "Incorrect API key provided (stub)."))
        # One list that both SDKs accept: OpenAI's and Anthropic's model fields side by side.
        data = [
            {"id": m, "object": "model", "created": 0, "owned_by": "stub", "type": "model", "display_name": m,
             "created_at": "1970-01-01T00:00:00Z"}
            for m in self.config.models
        ]  # fmt: skip
        ids = [m["id"] for m in data]
        return _json(200, {"object": "list", "data": data, "has_more": False,
                           "first_id": ids[0] if ids else None, "last_id": ids[-1] if ids else None})  # fmt: skip

    async def _control(self, request: web.BaseRequest) -> web.Response:
        what = request.path[len("/_stub/") :]
        if what == "stats":
            return _json(200, self.stats())
        if what == "reset" and request.method == "POST":
            self.reset()
            return _json(200, {"ok": True})
        if what == "config" and request.method == "POST":
            try:
                self.configure(**json.loads(await request.read() or b"{}"))
            except (ValueError, TypeError) as exc:
                return _json(400, {"error": {"message": str(exc), "type": "invalid_request_error"}})
        if what == "config":
            return _json(200, self.config.to_json())
        return _json(404, {"error": {"message": f"no stub control {request.method} {what}", "type": "not_found"}})


def _api_key(request: web.BaseRequest) -> str:
    key = request.headers.get("x-api-key")
    if key:
        return key
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


# -- talking to a stub in another process --------------------------------------------------------------


def _control_call(base_url: str, what: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(f"{base_url}/_stub/{what}", data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def remote_stats(base_url: str) -> dict[str, Any]:
    """`stats()` of a stub at `base_url` (e.g. one started by `start_stub_process`)."""
    return _control_call(base_url, "stats")


def remote_reset(base_url: str) -> None:
    _control_call(base_url, "reset", {})


def remote_configure(base_url: str, **changes: Any) -> dict[str, Any]:
    """`configure(**changes)` on a stub at `base_url`; returns its new config."""
    return _control_call(base_url, "config", changes)


# -- as a process --------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m factory.testing.llm_stub", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (read it from the READY line)")
    parser.add_argument("--responder", default="", help="'module:function' to import as the responder")
    # The flags are the config's fields, so the CLI can never lag behind StubConfig.
    for f in fields(StubConfig):
        names = [f"--{f.name.replace('_', '-')}"] + ([f.metadata["flag"]] if f.metadata.get("flag") else [])
        kind = {"float": float, "int": int}.get(str(f.type), str)
        suffix = " (comma-separated)" if "tuple" in str(f.type) else ""
        parser.add_argument(*names, dest=f.name, type=kind, default=None, help=f.metadata["help"] + suffix)
    return parser


def _load_responder(spec: str) -> Responder:
    module, _, name = spec.partition(":")
    if not name:
        raise SystemExit(f"--responder wants 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module), name)


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM/SIGINT; print ``READY <base_url>`` once listening."""
    args = _parser().parse_args(argv)
    options = {f.name: getattr(args, f.name) for f in fields(StubConfig) if getattr(args, f.name) is not None}
    responder = _load_responder(args.responder) if args.responder else None
    stub = StubLLMServer(StubConfig(**options), responder=responder, host=args.host, port=args.port)
    loop = _new_loop()
    asyncio.set_event_loop(loop)

    def started() -> None:
        assert stub._stopping is not None
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stub._stopping.set)
        print(f"READY {stub.base_url}", flush=True)

    try:
        loop.run_until_complete(stub._serve(started))
    finally:
        loop.close()


def start_stub_process(*, ready_timeout_s: float = 30.0, **options: Any) -> tuple[subprocess.Popen[str], str]:
    """Run the stub as its own process; returns it and its base URL once it listens.

    `options` are CLI flags by their Python names (`latency=0.2`, `rate_429=0.05`, `script=["429"]`,
    `responder="mypkg.mod:fn"`); stop it with `stop_stub_process`.
    """
    argv = [sys.executable, "-m", "factory.testing.llm_stub"]
    for name, value in options.items():
        if callable(value):
            raise TypeError(f"{name}: a process cannot take a Python callable; pass 'module:function'")
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        argv += [f"--{name.replace('_', '-')}", str(value)]
    env = dict(os.environ)
    # The child must import this checkout of `factory` even when it is not installed.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], ready_timeout_s)
    line = proc.stdout.readline() if readable else ""
    if not line.startswith("READY "):
        stop_stub_process(proc)
        raise RuntimeError(f"stub process did not start (exit code {proc.returncode}, first line {line!r})")
    return proc, line.split()[1]


def stop_stub_process(proc: subprocess.Popen[str], timeout_s: float = 10.0) -> int:
    """SIGTERM the stub process (SIGKILL if it lingers); returns its exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode


if __name__ == "__main__":
    main()
