"""The `http` transport of the `openai` provider: the chat-completions wire protocol over plain aiohttp.

The `openai` SDK spends most of a call's client CPU building and validating typed request and response
objects; on a 2-core machine that, not the network, caps a run near 450 req/s (see
benchmarks/RESULTS.md). This transport sends the same JSON and reads the same fields with none of that,
for OpenAI-compatible servers at high concurrency: `providers: {openai: {transport: http}}` in
`$FACTORY_HOME/config.yaml`. The SDK stays the default.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from factory.llm.provider import CallError, error_for_status
from factory.secrets import register_secret


class OpenAIHTTP:
    def __init__(self, base_url: str, api_key: str, timeout_s: float, concurrency: int, what: str):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        register_secret(api_key)
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.what = what
        self._session = None

    def _get_session(self):
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=300),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s), headers=self.headers,
            )
        return self._session

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        try:
            async with self._get_session().post(self.url, data=json.dumps(params)) as resp:
                body = await resp.read()
                status, headers = resp.status, resp.headers
        except asyncio.TimeoutError:
            raise CallError(f"timed out ({self.what})", retryable=True) from None
        except aiohttp.ClientConnectorError as exc:
            raise CallError(f"cannot connect ({self.what}): {exc}", retryable=True, unreachable=True) from None
        except aiohttp.ClientError as exc:
            raise CallError(f"connection error ({self.what}): {exc}", retryable=True) from None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            if status >= 400:
                raise error_for_status(status, body[:200].decode(errors="replace"), headers, f" for {self.what}") \
                    from None
            raise CallError(f"malformed response ({self.what}): {body[:80]!r}", retryable=True) from None
        if status >= 400:
            err = data.get("error", data) if isinstance(data, dict) else data
            message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            raise error_for_status(status, str(message)[:300], headers, f" for {self.what}")
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise CallError(f"malformed response ({self.what}): no choices", retryable=True)
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
