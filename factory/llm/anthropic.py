"""`anthropic:MODEL`: the `anthropic` SDK (Messages API). `ANTHROPIC_BASE_URL` is honoured.

The Messages API has no `n`: a request for n samples makes n calls. System prompts go in the `system`
field, as the API wants. Current Claude models take no sampling parameters and the SDK no longer types
them, so `temperature`/`top_p` are sent (as extra body fields) only with the provider option
`send_sampling: true` (in `$FACTORY_HOME/config.yaml` under `providers: {anthropic: ...}`), for older
models such as claude-2.1.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from factory.llm.batch_apis import AnthropicBatch
from factory.llm.sdk_provider import SDKProvider
from factory.llm.types import ChatRequest, Completion


class AnthropicProvider(AnthropicBatch, SDKProvider):
    name = "anthropic"
    default_batch_limits = (100_000, 256_000_000)
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
        schema = r.json_schema()
        if schema is not None:  # a forced tool call: the tool's input is the structured reply
            name = r.schema_name()
            params["tools"] = [{"name": name, "description": "Record the answer.", "input_schema": schema}]
            params["tool_choice"] = {"type": "tool", "name": name}
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
            texts=[message_text(r.content) for r in replies],
            finish_reason=replies[0].stop_reason,
            prompt_tokens=sum(r.usage.input_tokens for r in replies),
            completion_tokens=sum(r.usage.output_tokens for r in replies),
            model=replies[0].model or self.model, latency_s=time.perf_counter() - start,
        )


def message_text(content: list[Any]) -> str:
    """A reply's text: its text blocks, or the input of its (forced) tool call as JSON."""
    tool = next((b for b in content if _get(b, "type") == "tool_use"), None)
    if tool is not None:
        return json.dumps(_get(tool, "input"), ensure_ascii=False)
    return "".join(_get(b, "text") or "" for b in content if _get(b, "type") == "text")


def _get(block: Any, key: str) -> Any:
    """A content block's field, from the SDK's object or from the plain dict of a batch result."""
    return block.get(key) if isinstance(block, dict) else getattr(block, key, None)
