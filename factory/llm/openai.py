"""`openai:MODEL`: the `openai` SDK, for OpenAI and any OpenAI-compatible server.

The base URL comes from the `base_url` option or `OPENAI_BASE_URL` (a `vllm serve` process, llama.cpp's
server, Together, ...); the key from `api_key_env` (default `OPENAI_API_KEY`). The SDK runs on its aiohttp
transport with a connection pool as large as the run's concurrency, and with its own retries off: the
runner retries, once, for every provider. Option `transport: http` swaps the SDK for the lean wire-level
client in `openai_http` (same requests, same fields read), for very high request rates.
"""

from __future__ import annotations

import os
import time
from typing import Any

from factory.errors import FactoryError
from factory.llm.provider import Provider
from factory.llm.types import ChatRequest, Completion


def resolve_key(env_var: str, base_url: str | None, default_local: str = "EMPTY") -> str:
    key = os.environ.get(env_var)
    if key:
        return key
    if base_url and ("127.0.0.1" in base_url or "localhost" in base_url):
        return default_local  # local servers (vllm serve, llama.cpp) accept any key
    raise FactoryError(f"no API key: set {env_var}")


class OpenAIProvider(Provider):
    name = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 timeout_s: float = 120.0, concurrency: int = 64, transport: str = "sdk", **options: Any):
        super().__init__(model, **options)
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.api_key = resolve_key(api_key_env, self.base_url)
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self._client = None
        if transport not in ("sdk", "http"):
            raise FactoryError(f"openai provider: transport must be 'sdk' or 'http', not {transport!r}")
        self._http = None
        if transport == "http":
            from factory.llm.openai_http import OpenAIHTTP

            base = self.base_url or "https://api.openai.com/v1"
            self._http = OpenAIHTTP(base, self.api_key, timeout_s, concurrency, f"{self.spec} at {base}")
        try:
            import openai  # noqa: F401  (fail now, with the install hint, not mid-run)
        except ImportError as exc:
            from factory.llm.provider import missing_extra

            raise missing_extra("openai") from exc

    def _get_client(self):
        if self._client is None:
            import httpx2
            import openai

            limits = httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = openai.AsyncOpenAI(
                api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s,
                http_client=openai.DefaultAioHttpClient(limits=limits, timeout=self.timeout_s),
            )
        return self._client

    def _params(self, r: ChatRequest) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model, "messages": r.chat(), "max_tokens": r.max_tokens}
        if r.temperature is not None:
            params["temperature"] = r.temperature
        if r.top_p is not None:
            params["top_p"] = r.top_p
        if r.n != 1:
            params["n"] = r.n
        if r.stop:
            params["stop"] = r.stop
        if r.seed is not None:
            params["seed"] = r.seed
        if r.response_format is not None:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": "answer", "schema": r.response_format}}
        return params

    async def complete(self, request: ChatRequest) -> Completion:
        if self._http is not None:
            return await self._complete_http(request)
        import openai

        from factory.llm.sdk_errors import to_call_error

        start = time.perf_counter()
        try:
            resp = await self._get_client().chat.completions.create(**self._params(request))
        except Exception as exc:
            raise to_call_error(exc, openai, f"{self.spec} at {self.base_url or 'api.openai.com'}") from None
        usage = resp.usage
        return Completion(
            texts=[c.message.content or "" for c in resp.choices],
            finish_reason=resp.choices[0].finish_reason if resp.choices else None,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            model=resp.model or self.model, latency_s=time.perf_counter() - start,
        )

    async def _complete_http(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        data = await self._http.create(self._params(request))
        choices = data["choices"]
        usage = data.get("usage") or {}
        return Completion(
            texts=[(c.get("message") or {}).get("content") or "" for c in choices],
            finish_reason=choices[0].get("finish_reason") if choices else None,
            prompt_tokens=usage.get("prompt_tokens") or 0, completion_tokens=usage.get("completion_tokens") or 0,
            model=data.get("model") or self.model, latency_s=time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._client is not None:
            await self._client.close()
            self._client = None
