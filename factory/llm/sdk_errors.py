"""Turn the `openai` / `anthropic` SDK exceptions into `CallError`s (both SDKs share one error hierarchy)."""

from __future__ import annotations

import json
from types import ModuleType

from factory.llm.provider import CallError, error_for_status


def to_call_error(exc: BaseException, sdk: ModuleType, what: str) -> CallError:
    """`what` names the model and endpoint, for messages like "not found (HTTP 404) for openai:gpt-5 at URL"."""
    if isinstance(exc, sdk.APIStatusError):
        message = _message(exc)
        return error_for_status(exc.status_code, message, exc.response.headers, f" for {what}")
    if isinstance(exc, sdk.APIConnectionError):
        import httpx2

        cause = exc.__cause__ or exc.__context__
        # the aiohttp transport reports a refused connection as ConnectTimeout: look at the cause, not the class
        if isinstance(cause, (httpx2.ConnectError, httpx2.ConnectTimeout)) or not isinstance(exc, sdk.APITimeoutError):
            detail = f": {cause}" if cause else ""
            return CallError(f"cannot connect ({what}){detail}", retryable=True, unreachable=True)
        return CallError(f"timed out ({what})", retryable=True)
    if isinstance(exc, (json.JSONDecodeError, sdk.APIResponseValidationError, UnicodeDecodeError)):
        return CallError(f"malformed response ({what}): {str(exc)[:120]}", retryable=True)
    raise exc


def _message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(getattr(exc, "message", exc))[:300]
