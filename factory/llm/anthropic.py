"""`anthropic:MODEL`: the `anthropic` SDK (Messages API). `ANTHROPIC_BASE_URL` is honoured.

The Messages API has no `n`: a request for n samples makes n calls. System prompts go in the `system`
field, as the API wants. Current Claude models take no sampling parameters and the SDK no longer types
them, so `temperature`/`top_p` are sent (as extra body fields) only with the provider option
`send_sampling: true` (in `$FACTORY_HOME/config.yaml` under `providers: {anthropic: ...}`), for older
models such as claude-2.1.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from factory.llm.openai import resolve_key
from factory.llm.provider import Provider
from factory.llm.types import ChatRequest, Completion


class AnthropicProvider(Provider):
    name = "anthropic"

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "ANTHROPIC_API_KEY",
                 timeout_s: float = 120.0, concurrency: int = 64, send_sampling: bool = False, **options: Any):
        super().__init__(model, **options)
        self.send_sampling = send_sampling
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self.api_key = resolve_key(api_key_env, self.base_url)
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self._client = None
        try:
            import anthropic  # noqa: F401
        except ImportError as exc:
            from factory.llm.provider import missing_extra

            raise missing_extra("anthropic") from exc

    def _get_client(self):
        if self._client is None:
            import anthropic
            import httpx2

            limits = httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = anthropic.AsyncAnthropic(
                api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s,
                http_client=anthropic.DefaultAioHttpClient(limits=limits, timeout=self.timeout_s),
            )
        return self._client

    def _params(self, r: ChatRequest) -> dict[str, Any]:
        messages = [m for m in r.messages if m["role"] != "system"]
        system = "\n\n".join(filter(None, [r.system, *(m["content"] for m in r.messages if m["role"] == "system")]))
        params: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": r.max_tokens}
        if system:
            params["system"] = system
        if r.stop:
            params["stop_sequences"] = r.stop
        if r.response_format is not None:
            params["output_config"] = {"format": {"type": "json_schema", "schema": r.response_format}}
        sampling = {k: v for k, v in (("temperature", r.temperature), ("top_p", r.top_p)) if v is not None}
        if sampling and self.send_sampling:
            params["extra_body"] = sampling
        return params

    async def _one(self, params: dict[str, Any]):
        import anthropic

        from factory.llm.sdk_errors import to_call_error

        try:
            return await self._get_client().messages.create(**params)
        except Exception as exc:
            raise to_call_error(exc, anthropic, f"{self.spec} at {self.base_url or 'api.anthropic.com'}") from None

    async def complete(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        params = self._params(request)
        replies = await asyncio.gather(*(self._one(params) for _ in range(request.n)))
        return Completion(
            texts=["".join(b.text for b in r.content if getattr(b, "type", "") == "text") for r in replies],
            finish_reason=replies[0].stop_reason,
            prompt_tokens=sum(r.usage.input_tokens for r in replies),
            completion_tokens=sum(r.usage.output_tokens for r in replies),
            model=replies[0].model or self.model, latency_s=time.perf_counter() - start,
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
