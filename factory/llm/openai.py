"""`openai:MODEL`: the `openai` SDK, for OpenAI and any OpenAI-compatible server.

The base URL comes from the `base_url` option or `OPENAI_BASE_URL` (a `vllm serve` process, llama.cpp's
server, Together, ...); the key from `api_key_env` (default `OPENAI_API_KEY`). Chat calls go through the lean
wire-level client in `openai_http` by default (`transport: http`: the same requests and fields, the same
error mapping, proxies and TLS settings, at several times the SDK's request rate on a small machine). Option
`transport: sdk` uses the `openai` SDK instead, on its aiohttp transport with a connection pool as large as
the run's concurrency. Either way the SDK's own retries are off: the runner retries, once, for every
provider. The batch API (`--batch`) always uses the SDK.
"""

from __future__ import annotations

import time
from typing import Any

from factory.errors import FactoryError
from factory.llm.batch_apis import OpenAIBatch, openai_completion
from factory.llm.choices import from_top_logprobs
from factory.llm.sdk_provider import SDKProvider
from factory.llm.types import ChatRequest, Completion


class OpenAIProvider(OpenAIBatch, SDKProvider):
    name = "openai"
    prompt_per_sample = False  # `n` samples share one prompt
    sdk, client_class = "openai", "AsyncOpenAI"
    base_url_env, key_env, default_host = "OPENAI_BASE_URL", "OPENAI_API_KEY", "api.openai.com"
    choice_scoring = "logprobs"  # `--scoring logprobs`: from `top_logprobs`, where the server returns them

    def __init__(self, model: str, *, transport: str = "http", proxy: str | None = None,
                 ca_bundle: str | None = None, verify_ssl: bool = True, **options: Any):
        super().__init__(model, **options)
        if transport not in ("sdk", "http"):
            raise FactoryError(f"openai provider: transport must be 'sdk' or 'http', not {transport!r}")
        self.transport = transport
        self._http = None
        if transport == "http":
            from factory.llm.openai_http import OpenAIHTTP

            base = self.base_url or "https://api.openai.com/v1"
            self._http = OpenAIHTTP(base, self.api_key, self.timeout_s, self.concurrency, f"{self.spec} at {base}",
                                    proxy=proxy, ca_bundle=ca_bundle, verify_ssl=verify_ssl)

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
        if r.choices:  # logprob scoring: the API's top alternatives at each reply token
            params.update(logprobs=True, top_logprobs=20)
        schema = r.json_schema()
        if schema is not None:
            params["response_format"] = {"type": "json_schema",
                                         "json_schema": {"name": r.schema_name(), "schema": schema, "strict": True}}
        return params

    async def complete(self, request: ChatRequest) -> Completion:
        if self._http is not None:
            return await self._complete_http(request)
        start = time.perf_counter()
        resp = await self.call(self.client().chat.completions.create, **self._params(request))
        usage = resp.usage
        completion = Completion(
            texts=[c.message.content or "" for c in resp.choices],
            finish_reason=resp.choices[0].finish_reason if resp.choices else None,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            model=resp.model or self.model, latency_s=time.perf_counter() - start,
        )
        if request.choices:
            logprobs = resp.choices[0].logprobs if resp.choices else None
            completion.choice_probs = from_top_logprobs(logprobs.model_dump() if logprobs else None, request.choices)
        return completion

    async def _complete_http(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        data = await self._http.create(self._params(request))
        completion = openai_completion(data, self.model, time.perf_counter() - start)
        if request.choices:
            first = (data.get("choices") or [{}])[0]
            completion.choice_probs = from_top_logprobs(first.get("logprobs"), request.choices)
        return completion

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
        await super().aclose()
