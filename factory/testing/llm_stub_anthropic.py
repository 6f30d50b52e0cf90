"""The Anthropic Messages wire format of the stub LLM server (`POST /v1/messages`).

Shapes follow the `anthropic` SDK's `Message`; errors are `{"type": "error", "error": {"type", "message"}}`.
The Messages API has no `n`: a call always has one choice. A forced tool call (`tool_choice: {type: tool}`)
is answered with a `tool_use` block whose input is the reply parsed as JSON (text when it is not JSON).
"""

from __future__ import annotations

import json
from typing import Any

from factory.testing.llm_stub_core import Call, Choice, text_of

API = "anthropic"
_STOP = {"stop": "end_turn", "stop_sequence": "stop_sequence", "length": "max_tokens"}
_ERRORS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def parse(body: dict[str, Any]) -> Call:
    """A Messages body as a `Call`; `system` may be a string or a list of text blocks."""
    system = body.get("system")
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format") or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    choice = body.get("tool_choice") or {}
    tool = None
    if choice.get("type") == "tool":  # a forced tool call: the reply is the tool's input, by its schema
        tool = str(choice.get("name", ""))
        spec = next((t for t in body.get("tools") or [] if t.get("name") == tool), {})
        schema = spec.get("input_schema") or {"type": "object"}
    max_tokens = body.get("max_tokens")
    return Call(
        api=API,
        model=str(body.get("model", "")),
        messages=[{"role": str(m.get("role", "")), "content": text_of(m.get("content"))} for m in body["messages"]],
        system=text_of(system) if system is not None else None,
        max_tokens=int(max_tokens) if max_tokens is not None else None,
        stop=list(body.get("stop_sequences") or []),
        temperature=body.get("temperature"),
        json_mode=schema is not None,
        schema=schema,
        tool=tool,
        body=body,
    )


def render(call: Call, choices: list[Choice], number: int) -> dict[str, Any]:
    choice = choices[0]
    content: list[dict[str, Any]] = [{"type": "text", "text": choice.text}]
    stop = _STOP[choice.finish]
    if call.tool is not None:
        try:
            value = json.loads(choice.text)
        except ValueError:
            value = None  # a reply that is no JSON object stays text: what a misbehaving model sends
        if isinstance(value, dict):
            content = [{"type": "tool_use", "id": f"toolu_stub{number:010d}", "name": call.tool, "input": value}]
            stop = "tool_use"
    return {
        "id": f"msg_stub{number:010d}",
        "type": "message",
        "role": "assistant",
        "model": call.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": choice.stop_sequence,
        "usage": {"input_tokens": call.prompt_tokens(), "output_tokens": choice.tokens},
    }


def error(status: int, message: str) -> dict[str, Any]:
    kind = _ERRORS.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": None}
