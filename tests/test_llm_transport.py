"""The default `http` transport of `openai:` keeps the SDK path's semantics: proxies, key redaction, errors."""

from __future__ import annotations

import asyncio
import threading

import pytest
from aiohttp import web

from factory.llm import ChatRequest, load_llm
from factory.llm.runner import RunAborted
from factory.testing.llm_stub import StubLLMServer


def reqs(n):
    return [ChatRequest(messages=[{"role": "user", "content": f"question number {i}"}], max_tokens=8)
            for i in range(n)]


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_http_is_the_default_and_honours_the_proxy_environment(tmp_path, clean_env):
    with StubLLMServer() as stub:
        # the API host does not exist: only a client that goes through HTTP_PROXY (the stub) gets answers
        clean_env.setenv("HTTP_PROXY", stub.base_url)
        clean_env.setenv("OPENAI_API_KEY", "sk-proxy-test")
        llm = load_llm("openai:stub-model", home=tmp_path, progress=False, max_retries=0,
                       provider_options={"base_url": "http://api.openai.invalid/v1"})
        assert llm.provider.transport == "http"
        out = llm.generate_sync(reqs(3))
        assert [c.ok for c in out] == [True] * 3 and stub.stats()["requests"] == 3
        clean_env.setenv("NO_PROXY", "api.openai.invalid")  # NO_PROXY wins: the unknown host cannot be reached
        llm = load_llm("openai:stub-model", home=tmp_path, progress=False, max_retries=1, cache=False,
                       backoff_base_s=0.01, provider_options={"base_url": "http://api.openai.invalid/v1"})
        out = llm.generate_sync(reqs(3))
        assert all(c.error and "cannot connect" in c.error for c in out) and stub.stats()["requests"] == 3


class EchoServer:
    """A server that answers 401 with the Authorization header it got in the message, as some proxies do."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0

    async def handle(self, request):
        auth = request.headers.get("Authorization", "")
        return web.json_response({"error": {"message": f"invalid credentials {auth}"}}, status=401)

    def __enter__(self):
        async def serve():
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self.handle)
            self.runner = web.AppRunner(app)
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.port = self.runner.addresses[0][1]
            self.ready.set()

        self.thread = threading.Thread(target=lambda: (self.loop.run_until_complete(serve()),
                                                       self.loop.run_forever()), daemon=True)
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_an_echoed_key_is_redacted_from_errors(tmp_path, clean_env):
    clean_env.setenv("OPENAI_API_KEY", "sk-very-secret-key-123")
    with EchoServer() as server:
        llm = load_llm("openai:m", home=tmp_path, progress=False,
                       provider_options={"base_url": f"http://127.0.0.1:{server.port}/v1"})
        with pytest.raises(RunAborted) as info:
            llm.generate_sync(reqs(1))
    message = str(info.value)
    assert "authentication failed (HTTP 401)" in message and "Bearer ***" in message
    assert "sk-very-secret-key-123" not in message


def test_the_sdk_transport_stays_selectable(tmp_path, clean_env):
    with StubLLMServer(script=["429"], retry_after="0.05") as stub:
        clean_env.setenv("OPENAI_BASE_URL", stub.openai_base_url)
        llm = load_llm("openai:stub-model", home=tmp_path, progress=False, provider_options={"transport": "sdk"})
        assert llm.provider.transport == "sdk"
        out = llm.generate_sync(reqs(2))
    assert all(c.ok for c in out) and llm.stats.retries == 2
