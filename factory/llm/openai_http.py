"""The `http` transport of the `openai` provider (the default): the chat-completions wire protocol on aiohttp.

The `openai` SDK spends most of a call's client CPU building and validating typed request and response
objects; on a 2-core machine that, not the network, caps a run far below what the server gives (see
benchmarks/RESULTS.md). This transport sends the same JSON and reads the same fields with none of that,
and keeps the SDK path's semantics:

* retries, backoff and `Retry-After` / `retry-after-ms` are the runner's, for both transports; errors are
  classified by the same `error_for_status` (401/403/404 fatal, 408/409/429/5xx retryable, other 4xx not),
  refused connections are `unreachable`, timeouts and truncated or non-JSON bodies are retryable;
* usage comes from the body's `usage` block, as the SDK reads it;
* the API key never appears in an error (it is replaced by `***` in anything a server echoes back);
* proxies and TLS as the SDK (httpx) takes them from the environment: `HTTPS_PROXY` / `HTTP_PROXY` /
  `NO_PROXY`, `SSL_CERT_FILE` / `SSL_CERT_DIR`; or the provider options `proxy`, `ca_bundle` and
  `verify_ssl: false` in `$FACTORY_HOME/config.yaml`; `OPENAI_ORG_ID` / `OPENAI_PROJECT_ID` headers too.

What it does not do: the SDK's typed objects and its newer request fields. `transport: sdk` keeps the SDK
for a server or feature this transport does not cover; the batch API always goes through the SDK.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from typing import Any

from factory.llm.provider import CallError, error_for_status
from factory.secrets import register_secret


@functools.lru_cache(maxsize=8)
def _tls_context(cafile: str | None, capath: str | None) -> Any:
    """One context per CA bundle and process: loading a system bundle takes a tenth of a second of CPU, too much
    to pay for every `LLM` a pipeline makes."""
    import ssl

    return ssl.create_default_context(cafile=cafile, capath=capath)


class OpenAIHTTP:
    def __init__(self, base_url: str, api_key: str | None, timeout_s: float, concurrency: int, what: str, *,
                 proxy: str | None = None, ca_bundle: str | None = None, verify_ssl: bool = True):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        register_secret(api_key)  # scrubbed from every CallError too (factory.secrets)
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self.what = what
        self.proxy = proxy
        self.ca_bundle = ca_bundle
        self.verify_ssl = verify_ssl
        self._session = None

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json",
                   "Accept": "application/json"}
        for env, header in (("OPENAI_ORG_ID", "OpenAI-Organization"), ("OPENAI_PROJECT_ID", "OpenAI-Project")):
            if os.environ.get(env):
                headers[header] = os.environ[env]
        return headers

    def _ssl(self) -> Any:
        """The TLS context: verification on, with the CA bundle from the option or the environment."""
        if not self.verify_ssl:
            return False
        cafile = self.ca_bundle or os.environ.get("SSL_CERT_FILE") or None
        capath = os.environ.get("SSL_CERT_DIR") or None
        if cafile or capath:
            return _tls_context(cafile, capath)
        return True  # aiohttp's default context: the system's trust store

    def _env_proxy(self) -> tuple[Any, Any]:
        """The proxy (and its netrc auth) that HTTPS_PROXY/HTTP_PROXY/NO_PROXY give for our one URL.

        Read once per session, as httpx reads them when its client is made: aiohttp's `trust_env` would look
        them up again in a worker thread on every request: two thread hops a call."""
        from aiohttp.helpers import get_env_proxy_for_url
        from yarl import URL

        try:
            return get_env_proxy_for_url(URL(self.url))
        except LookupError:
            return None, None

    def _get_session(self):
        if self._session is None:
            import aiohttp

            self._proxy, self._proxy_auth = (self.proxy, None) if self.proxy is not None else self._env_proxy()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=300, ssl=self._ssl()),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s), headers=self._headers(),
            )
        return self._session

    def _redact(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key and len(self.api_key) >= 4 else text

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        import aiohttp

        try:
            session = self._get_session()
            async with session.post(self.url, data=json.dumps(params), proxy=self._proxy,
                                    proxy_auth=self._proxy_auth) as resp:
                body = await resp.read()
                status, headers = resp.status, resp.headers
        except asyncio.TimeoutError:
            raise CallError(f"timed out ({self.what})", retryable=True) from None
        except aiohttp.ClientConnectorError as exc:
            raise CallError(self._redact(f"cannot connect ({self.what}): {exc}"), retryable=True,
                            unreachable=True) from None
        except aiohttp.ClientError as exc:
            raise CallError(self._redact(f"connection error ({self.what}): {exc}"), retryable=True) from None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            text = self._redact(body[:200].decode(errors="replace"))
            if status >= 400:
                raise error_for_status(status, text, headers, f" for {self.what}") from None
            raise CallError(f"malformed response ({self.what}): {text[:80]!r}", retryable=True) from None
        if status >= 400:
            err = data.get("error", data) if isinstance(data, dict) else data
            message = err.get("message", str(err)) if isinstance(err, dict) else str(err)
            raise error_for_status(status, self._redact(str(message))[:300], headers, f" for {self.what}")
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise CallError(f"malformed response ({self.what}): no choices", retryable=True)
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
