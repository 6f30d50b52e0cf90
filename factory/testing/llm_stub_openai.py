"""The OpenAI chat-completions wire format of the stub LLM server (`POST /v1/chat/completions`).

Shapes follow the `openai` SDK's `ChatCompletion` and its error handling: errors are
`{"error": {"message", "type", "param", "code"}}`, which the SDK unwraps into `exc.body`.
"""

from __future__ import annotations

import time
from typing import Any

from factory.testing.llm_stub_core import Call, Choice, text_of

API = "openai"
_FINISH = {"stop": "stop", "stop_sequence": "stop", "length": "length"}
_ERRORS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def parse(body: dict[str, Any]) -> Call:
    """A chat-completions body as a `Call`; system messages stay in `messages`, as OpenAI sends them."""
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    stop = body.get("stop") or []
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return Call(
        api=API,
        model=str(body.get("model", "")),
        messages=[{"role": str(m.get("role", "")), "content": text_of(m.get("content"))} for m in body["messages"]],
        n=int(body.get("n") or 1),
        max_tokens=int(max_tokens) if max_tokens is not None else None,
        stop=[stop] if isinstance(stop, str) else list(stop),
        seed=body.get("seed"),
        temperature=body.get("temperature"),
        json_mode=fmt.get("type") in ("json_object", "json_schema"),
        schema=schema,
        body=body,
    )


def render(call: Call, choices: list[Choice], number: int) -> dict[str, Any]:
    prompt_tokens = call.prompt_tokens()
    completion_tokens = sum(c.tokens for c in choices)
    return {
        "id": f"chatcmpl-stub{number:010d}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "system_fingerprint": "fp_stub",
        "choices": [
            {
                "index": i,
                "message": {"role": "assistant", "content": c.text, "refusal": None},
                "finish_reason": _FINISH[c.finish],
                "logprobs": c.logprobs() if call.body.get("logprobs") else None,
            }
            for i, c in enumerate(choices)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error(status: int, message: str) -> dict[str, Any]:
    kind, code = _ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
