"""The batch endpoints of the stub LLM server: OpenAI's Files + Batch API and Anthropic's Message Batches.

* OpenAI: ``POST /v1/files`` (multipart, `purpose=batch`), ``GET /v1/files/{id}`` and ``/content``,
  ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``;
* Anthropic: ``POST /v1/messages/batches``, ``GET /v1/messages/batches/{id}`` and ``/results``.

A batch is `validating` (OpenAI) for the first tenth of `batch_latency_s`, then `in_progress`, then done; its
lines are answered when it is first seen done, by the same rules as an online call (replies, tokens,
`max_tokens`, schemas). Faults come from the same `script` / `rate_*` draw, per (request, attempt), with
attempts counted together with online calls: `429`, `500` or any status make an errored line, `timeout` an
expired one (a follow-up batch of the same request is its next attempt). A batch above `batch_max_requests`
lines is refused with 400, as the real APIs refuse one above their limits. `stats()["batches"]` counts
batches created and `stats()["files"]` files uploaded, so a test can tell that a resumed run submitted nothing.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from factory.testing import llm_stub_anthropic, llm_stub_openai
from factory.testing.llm_stub_core import OK, make_choices, pick_fault, request_key

_DONE_OPENAI = ("completed", "expired", "failed", "cancelled")


@dataclass
class StubBatch:
    id: str
    api: str
    lines: list[dict[str, Any]]  # OpenAI: the JSONL lines; Anthropic: the `requests` entries
    created: float
    latency_s: float
    input_file_id: str | None = None
    results: list[dict[str, Any]] | None = None  # filled when the batch is first seen done
    output_file_id: str | None = None
    error_file_id: str | None = None
    cancelled: bool = False
    counts: dict[str, int] = field(default_factory=dict)

    def stage(self, latency_now: float | None = None) -> str:
        """validating / in_progress / done; lowering the server's `batch_latency_s` hurries batches in flight."""
        latency = self.latency_s if latency_now is None else min(self.latency_s, latency_now)
        elapsed = time.time() - self.created
        if self.cancelled or elapsed >= latency:
            return "done"
        return "validating" if elapsed < latency / 10 else "in_progress"


class BatchBook:
    """All files and batches of one stub server, answered through the server's reply and fault rules."""

    def __init__(self, server: Any):
        self.server = server
        self.files: dict[str, bytes] = {}
        self.file_meta: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, StubBatch] = {}
        self.ids = itertools.count(1)
        self.created = 0
        self.uploaded = 0
        self.lines = 0

    def stats(self) -> dict[str, int]:
        return {"batches": self.created, "files": self.uploaded, "batch_lines": self.lines}

    # -- OpenAI ----------------------------------------------------------------------------------------
    def upload(self, name: str, data: bytes, purpose: str, by_client: bool = True) -> dict[str, Any]:
        fid = f"file-stub{next(self.ids):08d}"
        self.files[fid] = data
        self.uploaded += by_client
        self.file_meta[fid] = {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                               "filename": name, "purpose": purpose, "status": "processed"}
        return self.file_meta[fid]

    def create_openai(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fid = body.get("input_file_id")
        if fid not in self.files:
            return 404, llm_stub_openai.error(404, f"no such file {fid!r} (stub)")
        lines = [json.loads(line) for line in self.files[fid].decode().splitlines() if line.strip()]
        limit = self.server.config.batch_max_requests
        if len(lines) > limit:
            return 400, llm_stub_openai.error(400, f"batch of {len(lines)} requests is above the limit {limit} (stub)")
        if len({line["custom_id"] for line in lines}) != len(lines):
            return 400, llm_stub_openai.error(400, "custom_id values must be unique within a batch (stub)")
        batch = self._new("openai", lines, f"batch_stub{next(self.ids):08d}")
        batch.input_file_id = fid
        return 200, self.render_openai(batch)

    def render_openai(self, batch: StubBatch) -> dict[str, Any]:
        stage = batch.stage(self.server.config.batch_latency_s)
        if stage == "done":
            self._answer(batch)
        status = {"validating": "validating", "in_progress": "in_progress"}.get(stage)
        if status is None:
            status = "cancelled" if batch.cancelled else "expired" if batch.counts.get("expired") else "completed"
        done = batch.counts.get("succeeded", 0) + batch.counts.get("errored", 0) + batch.counts.get("expired", 0)
        return {
            "id": batch.id, "object": "batch", "endpoint": "/v1/chat/completions", "errors": None,
            "input_file_id": batch.input_file_id, "completion_window": "24h", "status": status,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id,
            "created_at": int(batch.created), "in_progress_at": None, "expires_at": int(batch.created) + 86400,
            "completed_at": int(time.time()) if status in _DONE_OPENAI else None, "metadata": None,
            "request_counts": {"total": len(batch.lines), "completed": batch.counts.get("succeeded", 0),
                               "failed": done - batch.counts.get("succeeded", 0)},
        }  # fmt: skip

    # -- Anthropic -------------------------------------------------------------------------------------
    def create_anthropic(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        requests = body.get("requests") or []
        limit = self.server.config.batch_max_requests
        if len(requests) > limit:
            return 400, llm_stub_anthropic.error(400, f"batch of {len(requests)} requests is above the limit {limit}")
        batch = self._new("anthropic", requests, f"msgbatch_stub{next(self.ids):08d}")
        return 200, self.render_anthropic(batch)

    def render_anthropic(self, batch: StubBatch) -> dict[str, Any]:
        stage = batch.stage(self.server.config.batch_latency_s)
        if stage == "done":
            self._answer(batch)
        ended = stage == "done"
        c = batch.counts
        base = self.server.base_url
        return {
            "id": batch.id, "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
            "request_counts": {"processing": 0 if ended else len(batch.lines), "succeeded": c.get("succeeded", 0),
                               "errored": c.get("errored", 0), "canceled": 0, "expired": c.get("expired", 0)},
            "ended_at": "2026-01-01T00:00:00Z" if ended else None, "created_at": "2026-01-01T00:00:00Z",
            "expires_at": "2026-01-02T00:00:00Z", "archived_at": None, "cancel_initiated_at": None,
            "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if ended else None,
        }  # fmt: skip

    # -- answering -------------------------------------------------------------------------------------
    def _new(self, api: str, lines: list[dict[str, Any]], bid: str) -> StubBatch:
        batch = StubBatch(bid, api, lines, time.time(), self.server.config.batch_latency_s)
        self.batches[bid] = batch
        self.created += 1
        self.lines += len(lines)
        return batch

    def _answer(self, batch: StubBatch) -> None:
        if batch.results is not None:
            return
        dialect = llm_stub_openai if batch.api == "openai" else llm_stub_anthropic
        results, errors = [], []
        for line in batch.lines:
            body = line["body"] if batch.api == "openai" else line["params"]
            result = self._one(dialect, body)
            kind = result["kind"]
            batch.counts[kind] = batch.counts.get(kind, 0) + 1
            entry = {"custom_id": line["custom_id"], **result}
            (results if kind == "succeeded" or batch.api == "anthropic" else errors).append(entry)
        batch.results = results + errors
        if batch.api == "openai":
            batch.output_file_id = self._store_jsonl(batch, [r for r in results], "output")
            batch.error_file_id = self._store_jsonl(batch, errors, "errors") if errors else None

    def _one(self, dialect: Any, body: dict[str, Any]) -> dict[str, Any]:
        config = self.server.config
        key = request_key(body)
        stats = self.server._stats
        attempt = stats.begin(dialect.API + "-batch", key)
        raw = json.dumps(body).encode()
        fault = OK
        status = 200
        usage = (0, 0)
        try:
            call = dialect.parse(body)
            fault = pick_fault(config, key, attempt, raw)
            if fault == "timeout":
                status = None
                return {"kind": "expired"}
            if fault != OK and fault != "malformed":
                status = int(fault)
                return {"kind": "errored", "status": status,
                        "error": dialect.error(status, f"Injected batch error {status} (stub).")}
            choices = make_choices(call, self.server.responder)
            usage = (call.prompt_tokens(), sum(c.tokens for c in choices))
            return {"kind": "succeeded", "body": dialect.render(call, choices, next(self.server._numbers))}
        finally:
            stats.end(key, status, fault if fault != "malformed" else OK, usage)

    def _store_jsonl(self, batch: StubBatch, entries: list[dict[str, Any]], what: str) -> str:
        lines = []
        for n, e in enumerate(entries):
            line: dict[str, Any] = {"id": f"batch_req_{n}", "custom_id": e["custom_id"], "response": None,
                                    "error": None}
            if e["kind"] == "succeeded":
                line["response"] = {"status_code": 200, "request_id": f"req_{n}", "body": e["body"]}
            elif e["kind"] == "errored":
                line["response"] = {"status_code": e["status"], "request_id": f"req_{n}", "body": e["error"]}
            else:
                line["error"] = {"code": "batch_expired",
                                 "message": "This request could not be executed before the completion window expired."}
            lines.append(line)
        data = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return self.upload(f"{batch.id}_{what}.jsonl", data, "batch_output", by_client=False)["id"]

    def anthropic_results(self, batch: StubBatch) -> bytes:
        self._answer(batch)
        out = []
        for e in batch.results or []:
            if e["kind"] == "succeeded":
                result: dict[str, Any] = {"type": "succeeded", "message": e["body"]}
            elif e["kind"] == "errored":
                result = {"type": "errored", "error": e["error"]}
            else:
                result = {"type": "expired"}
            out.append(json.dumps({"custom_id": e["custom_id"], "result": result}) + "\n")
        return "".join(out).encode()
