"""`anthropic:MODEL`: the `anthropic` SDK (Messages API). `ANTHROPIC_BASE_URL` is honoured.

The Messages API has no `n`: a request for n samples makes n calls. System prompts go in the `system`
field, as the API wants. Current Claude models take no sampling parameters and the SDK no longer types
them, so `temperature`/`top_p` are sent (as extra body fields) only with the provider option
`send_sampling: true` (in `$FACTORY_HOME/config.yaml` under `providers: {anthropic: ...}`), for older
models such as claude-2.1.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from factory.llm.sdk_provider import SDKProvider
from factory.llm.types import ChatRequest, Completion


class AnthropicProvider(SDKProvider):
    name = "anthropic"
    sdk, client_class = "anthropic", "AsyncAnthropic"
    base_url_env, key_env, default_host = "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", "api.anthropic.com"

    def __init__(self, model: str, *, send_sampling: bool = False, **options: Any):
        super().__init__(model, **options)
        self.send_sampling = send_sampling

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

    async def complete(self, request: ChatRequest) -> Completion:
        start = time.perf_counter()
        params = self._params(request)
        create = self.client().messages.create
        replies = await asyncio.gather(*(self.call(create, **params) for _ in range(request.n)))
        return Completion(
            texts=["".join(b.text for b in r.content if getattr(b, "type", "") == "text") for r in replies],
            finish_reason=replies[0].stop_reason,
            prompt_tokens=sum(r.usage.input_tokens for r in replies),
            completion_tokens=sum(r.usage.output_tokens for r in replies),
            model=replies[0].model or self.model, latency_s=time.perf_counter() - start,
        )
