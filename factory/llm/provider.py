"""What a provider is: a small class that turns one `ChatRequest` into one SDK call.

Providers know their SDK and nothing else. Retries, rate limits, caching, budgets and cost accounting
live once, in `factory.llm.runner`. A provider reports failures by raising `CallError`, saying whether
the failure is worth retrying and whether it dooms the whole run (a bad key, a missing model).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from factory.errors import FactoryError
from factory.llm.types import ChatRequest, Completion


class CallError(Exception):
    """One failed call. `retryable`: 429/5xx/timeouts/connection errors. `fatal`: stop the whole run."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False, fatal: bool = False,
                 retry_after: float | None = None, unreachable: bool = False):
        from factory.secrets import scrub

        # A server may echo our Authorization header in its error: the message goes to stderr and to rows.
        super().__init__(scrub(message))
        self.status = status
        self.retryable = retryable
        self.fatal = fatal
        self.retry_after = retry_after
        self.unreachable = unreachable  # no connection at all: fatal if nothing ever got through


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds from a `Retry-After` (or `retry-after-ms`) header, if the server sent one."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        import datetime as dt
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, (parsedate_to_datetime(value) - dt.datetime.now(dt.timezone.utc)).total_seconds())
        except (TypeError, ValueError):
            return None


def error_for_status(status: int, message: str, headers: Any = None, what: str = "") -> CallError:
    """Classify an HTTP failure the way every provider should."""
    if status == 429 or status >= 500 or status in (408, 409):
        return CallError(f"HTTP {status}: {message}", status=status, retryable=True,
                         retry_after=retry_after_seconds(headers))
    if status in (401, 403):
        return CallError(f"authentication failed (HTTP {status}){what}: {message}", status=status, fatal=True)
    if status == 404:
        return CallError(f"not found (HTTP 404){what}: {message}", status=status, fatal=True)
    return CallError(f"HTTP {status}: {message}", status=status)


class Provider(ABC):
    """One model behind one API. Subclasses set `name` and implement `complete`."""

    name: ClassVar[str]
    #: Providers that run the model in-process get whole batches (see `complete_batch`).
    local: ClassVar[bool] = False
    #: Providers with a batch API (`--batch`) implement the `batch_*` methods (see `factory.llm.batch`).
    batch_api: ClassVar[bool] = False
    #: Whether a request for `n` samples pays for its prompt `n` times (APIs without `n` make n calls).
    prompt_per_sample: ClassVar[bool] = True
    batch_poll_s: float = 5.0
    #: How a request with `choices` is answered: "native" (the model's own next-token probabilities, with
    #: the reply prefilled), "logprobs" (the API's top logprobs of the first reply token), None (not at all).
    choice_scoring: ClassVar[str | None] = None

    #: Run settings every provider is handed (`load_llm`); those that do not use them ignore them.
    RUN_OPTIONS: ClassVar[frozenset[str]] = frozenset({"concurrency", "timeout_s"})

    def __init__(self, model: str, **options: Any):
        # Whatever reaches the base no subclass took: a typo in `providers:` of the home config, say so.
        unknown = sorted(set(options) - self.RUN_OPTIONS)
        if unknown:
            from factory.errors import BadInput

            raise BadInput(f"unknown option {', '.join(map(repr, unknown))} for the {self.name} provider "
                           "(under `providers:` in $FACTORY_HOME/config.yaml?)")
        self.model = model
        self.options = options

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.model}"

    def ray_resources(self) -> dict[str, float]:
        """What one Ray worker holding this provider asks Ray for (`--executor ray`): an API client needs a CPU."""
        return {"num_cpus": 1}

    @abstractmethod
    async def complete(self, request: ChatRequest) -> Completion:
        """Answer one request or raise `CallError`."""

    def ready(self) -> None:  # noqa: B027 - optional hook
        """Raise a `FactoryError` when no call can succeed (no API key): checked before a run sends anything.

        A dry run never calls it, so estimating needs no key."""

    def complete_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        """Local providers: answer a batch synchronously (the runner calls this in a worker thread)."""
        raise NotImplementedError

    # -- the batch API (`--batch`); `factory.llm.batch` drives these ---------------------------------------
    def batch_limits(self) -> tuple[int, int]:
        """Most requests (lines) and bytes of input one batch may hold."""
        raise NotImplementedError

    def batch_lines(self, request: ChatRequest, custom_id: str) -> list[dict[str, Any]]:
        """The batch input lines of one request (more than one where the API has no `n`)."""
        raise NotImplementedError

    async def batch_submit(self, lines: list[dict[str, Any]]) -> str:
        """Submit one batch; its id. Raises `CallError`."""
        raise NotImplementedError

    async def batch_poll(self, batch_id: str) -> Any:
        """The batch's `BatchState`. Raises `CallError`."""
        raise NotImplementedError

    async def batch_results(self, batch_id: str) -> dict[str | None, Any]:
        """`custom_id -> BatchResult` of a finished batch (key None: what every request without a line got)."""
        raise NotImplementedError

    async def aclose(self) -> None:  # noqa: B027 - optional hook; most providers hold nothing to close
        """Release connections."""


def missing_extra(package: str, extra: str | None = None, why: str = "") -> FactoryError:
    hint = f'pip install "factory[{extra}]"' if extra else f"pip install {package}"
    return FactoryError(f"{package} is not installed{why}; install it with: {hint}")
