"""What the `openai` and `anthropic` providers share: both SDKs come from one generator and take the same
client arguments, so key and base-URL resolution, the aiohttp client with a pool sized to the run's
concurrency, error mapping and closing live here once.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, ClassVar

from factory.errors import FactoryError
from factory.llm.provider import CallError, Provider, missing_extra
from factory.secrets import register_secret


def resolve_key(env_var: str, base_url: str | None, default_local: str = "EMPTY") -> str | None:
    """The key to send, or None when there is none (a dry run needs none; a real call fails in `ready`)."""
    key = os.environ.get(env_var)
    register_secret(key, env_var)  # masked in every error text from here on, whatever the variable is named
    if key:
        return key
    if base_url and ("127.0.0.1" in base_url or "localhost" in base_url):
        return default_local  # local servers (vllm serve, llama.cpp) accept any key
    return None


def check_base_url(url: str, where: str) -> None:
    """A base URL must be http(s)://host[:port][/path]; anything else is a one-line error now, not a failed row."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
        from factory.errors import BadInput

        raise BadInput(f"invalid base URL {url!r} (from {where}): expected http(s)://HOST[:PORT]/...")


class SDKProvider(Provider):
    sdk: ClassVar[str]  # the SDK's module name
    client_class: ClassVar[str]  # its async client class
    base_url_env: ClassVar[str]
    key_env: ClassVar[str]
    default_host: ClassVar[str]
    default_batch_limits: ClassVar[tuple[int, int]] = (50_000, 200_000_000)

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str | None = None,
                 timeout_s: float = 120.0, concurrency: int = 64, batch_max_requests: int | None = None,
                 batch_max_bytes: int | None = None, batch_poll_s: float | None = None, **options: Any):
        super().__init__(model, **options)
        # provider options in $FACTORY_HOME/config.yaml; tests lower them to exercise splitting and polling
        max_requests, max_bytes = self.default_batch_limits
        self._batch_limits = (int(batch_max_requests or max_requests), int(batch_max_bytes or max_bytes))
        if batch_poll_s is not None:
            self.batch_poll_s = float(batch_poll_s)
        self.base_url = base_url or os.environ.get(self.base_url_env) or None
        if self.base_url is not None:
            check_base_url(self.base_url, f"base_url or ${self.base_url_env}")
        self.key_env_name = api_key_env or self.key_env
        self.api_key = resolve_key(self.key_env_name, self.base_url)
        self.timeout_s = timeout_s
        self.concurrency = concurrency
        self._client = None
        try:
            importlib.import_module(self.sdk)  # fail now, with the install hint, not mid-run
        except ImportError as exc:
            raise missing_extra(self.sdk) from exc

    def batch_limits(self) -> tuple[int, int]:
        return self._batch_limits

    @property
    def where(self) -> str:
        """`openai:gpt-4o at https://...`: what error messages name."""
        return f"{self.spec} at {self.base_url or self.default_host}"

    def ready(self) -> None:
        if self.api_key is None:
            raise FactoryError(f"no API key: set {self.key_env_name}")

    def client(self) -> Any:
        """The SDK's async client on its aiohttp transport, with the SDK's own retries off (ours run)."""
        if self._client is None:
            self.ready()
            import httpx2

            sdk = importlib.import_module(self.sdk)
            limits = httpx2.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            self._client = getattr(sdk, self.client_class)(
                api_key=self.api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s,
                http_client=sdk.DefaultAioHttpClient(limits=limits, timeout=self.timeout_s),
            )
        return self._client

    async def call(self, method: Any, **params: Any) -> Any:
        """Await an SDK method; its exceptions become `CallError`s."""
        from factory.llm.sdk_errors import to_call_error

        try:
            result = await method(**params)
        except Exception as exc:
            raise to_call_error(exc, importlib.import_module(self.sdk), self.where) from None
        if isinstance(result, (str, bytes)):
            # the SDKs hand back the raw text of a 200 that is not JSON (a proxy's HTML page): retry it
            raise CallError(f"malformed response ({self.where}): not JSON: {str(result)[:80]!r}", retryable=True)
        return result

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
