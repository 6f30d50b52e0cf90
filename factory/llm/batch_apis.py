"""The two batch APIs behind `--batch`, as mixins of the `openai` and `anthropic` providers.

* OpenAI Batch API: the requests as a JSONL file uploaded with `purpose=batch`, then `POST /v1/batches`
  (endpoint `/v1/chat/completions`, window 24 h); results come back as an output file and an error file,
  each line naming its `custom_id`.
* Anthropic Message Batches: `POST /v1/messages/batches` with the requests inline; results are a JSONL stream
  of `succeeded` / `errored` / `canceled` / `expired` entries by `custom_id`. The Messages API has no `n`,
  so a request for n samples is n lines (`<custom_id>-<k>`), joined again here.

What to do with the results (caching, retries in a follow-up batch, failed rows) is `factory.llm.batch`'s job.
"""

from __future__ import annotations

import json
from typing import Any

from factory.llm.batch import BatchResult, BatchState
from factory.llm.provider import error_for_status
from factory.llm.types import ChatRequest, Completion

_OPENAI_DONE = ("completed", "failed", "expired", "cancelled")
_ANTHROPIC_RETRYABLE = ("api_error", "overloaded_error", "rate_limit_error", "timeout_error")


def openai_completion(data: dict[str, Any], model: str, latency_s: float = 0.0) -> Completion:
    """A chat-completions response body (a dict) as a `Completion`."""
    choices = data.get("choices") or []
    usage = data.get("usage") or {}
    return Completion(
        texts=[(c.get("message") or {}).get("content") or "" for c in choices],
        finish_reason=choices[0].get("finish_reason") if choices else None,
        prompt_tokens=usage.get("prompt_tokens") or 0, completion_tokens=usage.get("completion_tokens") or 0,
        model=data.get("model") or model, latency_s=latency_s,
    )


class OpenAIBatch:
    """Mixed into `OpenAIProvider` (uses its `client()`, `call()`, `_params()`)."""

    batch_api = True

    def batch_lines(self, request: ChatRequest, custom_id: str) -> list[dict[str, Any]]:
        return [{"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                 "body": self._params(request)}]

    async def batch_submit(self, lines: list[dict[str, Any]]) -> str:
        data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        client = self.client()
        upload = await self.call(client.files.create, file=("factory-batch.jsonl", data), purpose="batch")
        batch = await self.call(client.batches.create, input_file_id=upload.id, endpoint="/v1/chat/completions",
                                completion_window="24h", metadata={"created_by": "factory"})
        return batch.id

    async def batch_poll(self, batch_id: str) -> BatchState:
        b = await self.call(self.client().batches.retrieve, batch_id=batch_id)
        counts = b.request_counts
        finished = (counts.completed + counts.failed) if counts else 0
        return BatchState(b.status, b.status in _OPENAI_DONE, finished, counts.total if counts else 0)

    async def batch_results(self, batch_id: str) -> dict[str | None, BatchResult]:
        client = self.client()
        b = await self.call(client.batches.retrieve, batch_id=batch_id)
        out: dict[str | None, BatchResult] = {}
        if b.status == "failed":  # the input was refused as a whole (validation): retrying cannot help
            errors = [e.message for e in (b.errors.data if b.errors and b.errors.data else []) if e.message]
            out[None] = BatchResult(Completion(error=f"the batch failed: {'; '.join(errors[:3]) or 'no reason'}"))
        for file_id in (b.output_file_id, b.error_file_id):
            if not file_id:
                continue
            content = await self.call(client.files.content, file_id=file_id)
            for line in content.text.splitlines():
                if line.strip():
                    entry = json.loads(line)
                    out[entry.get("custom_id")] = self._openai_result(entry)
        return out

    def _openai_result(self, entry: dict[str, Any]) -> BatchResult:
        response = entry.get("response") or {}
        status = response.get("status_code")
        body = response.get("body") or {}
        if status == 200 and isinstance(body, dict) and isinstance(body.get("choices"), list):
            return BatchResult(openai_completion(body, self.model))
        if status:
            err = body.get("error", body) if isinstance(body, dict) else body
            message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            e = error_for_status(int(status), str(message)[:300])
            return BatchResult(Completion(error=str(e)), retryable=e.retryable or status == 200)
        error = entry.get("error") or {}
        code = error.get("code") or "error"
        retryable = code in ("batch_expired", "batch_cancelled", "server_error", "rate_limit_exceeded")
        return BatchResult(Completion(error=f"{code}: {error.get('message', '')}"[:300]), retryable=retryable)


class AnthropicBatch:
    """Mixed into `AnthropicProvider` (uses its `client()`, `call()`, `_params()`)."""

    batch_api = True

    def batch_lines(self, request: ChatRequest, custom_id: str) -> list[dict[str, Any]]:
        params = self._params(request)
        params.update(params.pop("extra_body", None) or {})  # a batch line is the raw body: no SDK extras
        return [{"custom_id": f"{custom_id}-{k}", "params": params} for k in range(request.n)]

    async def batch_submit(self, lines: list[dict[str, Any]]) -> str:
        batch = await self.call(self.client().messages.batches.create, requests=lines)
        return batch.id

    async def batch_poll(self, batch_id: str) -> BatchState:
        b = await self.call(self.client().messages.batches.retrieve, message_batch_id=batch_id)
        c = b.request_counts
        finished = c.succeeded + c.errored + c.canceled + c.expired
        return BatchState(b.processing_status, b.processing_status == "ended", finished, finished + c.processing)

    async def batch_results(self, batch_id: str) -> dict[str | None, BatchResult]:
        from factory.llm.anthropic import message_text

        decoder = await self.call(self.client().messages.batches.results, message_batch_id=batch_id)
        parts: dict[str, dict[int, BatchResult]] = {}
        async for entry in decoder:
            base, _, k = entry.custom_id.rpartition("-")
            result = entry.result
            if result.type == "succeeded":
                m = result.message
                got = BatchResult(Completion(texts=[message_text(m.content)], finish_reason=m.stop_reason,
                                             prompt_tokens=m.usage.input_tokens,
                                             completion_tokens=m.usage.output_tokens, model=m.model or self.model))
            elif result.type == "errored":
                err = getattr(result.error, "error", None)
                kind = getattr(err, "type", "error")
                got = BatchResult(Completion(error=f"{kind}: {getattr(err, 'message', '')}"[:300]),
                                  retryable=kind in _ANTHROPIC_RETRYABLE)
            else:  # canceled, expired
                got = BatchResult(Completion(error=f"the request {result.type}"), retryable=True)
            parts.setdefault(base, {})[int(k or 0)] = got
        return {base: _join([got[k] for k in sorted(got)]) for base, got in parts.items()}


def _join(samples: list[BatchResult]) -> BatchResult:
    """The n lines of one request as one answer (failed if any sample failed)."""
    failed = next((s for s in samples if s.completion.error is not None), None)
    if failed is not None:
        return failed
    first = samples[0].completion
    return BatchResult(Completion(texts=[t for s in samples for t in s.completion.texts],
                                  finish_reason=first.finish_reason, model=first.model,
                                  prompt_tokens=sum(s.completion.prompt_tokens for s in samples),
                                  completion_tokens=sum(s.completion.completion_tokens for s in samples)))
