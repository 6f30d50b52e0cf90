"""The request and result types every LLM provider speaks.

A `ChatRequest` is one chat call; a `Completion` is what came back (or the error, kept as data).
Providers turn requests into SDK calls; retries, rate limits, caching and cost live in the shared layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from factory.hashing import digest

if TYPE_CHECKING:
    from factory.llm.structured import OutputSchema


@dataclass
class ChatRequest:
    """One chat call. `messages` are `{role, content}` dicts (TRL's conversational format)."""

    messages: list[dict[str, str]]
    system: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = 512
    n: int = 1
    stop: list[str] | None = None
    seed: int | None = None
    response_format: dict[str, Any] | None = None  # a JSON schema, where the provider supports it
    # Score these continuations instead of writing text: the answer's `choice_probs` holds the probability
    # of each (G-Eval's judge scoring). `prefix` opens the assistant's reply where the provider can prefill.
    choices: list[str] | None = None
    prefix: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # the caller's bookkeeping (row id ...); never sent
    # A structured-output schema: sent natively where the provider can, and every reply validated against it
    # (an invalid reply is retried, then the row fails). Takes the place of `response_format`.
    schema: OutputSchema | None = None

    def params(self) -> dict[str, Any]:
        """Everything that changes the answer: what the cache key is made of."""
        out = {"messages": self.messages, "system": self.system, "temperature": self.temperature,
               "top_p": self.top_p, "max_tokens": self.max_tokens, "n": self.n, "stop": self.stop,
               "seed": self.seed, "response_format": self.json_schema()}
        if self.schema is not None and self.schema.name != "answer":
            out["schema_name"] = self.schema.name
        if self.choices is not None:  # only then, so the keys of answers cached before stay what they were
            out.update(choices=self.choices, prefix=self.prefix)
        return out

    def json_schema(self) -> dict[str, Any] | None:
        """The JSON schema the reply must follow, if any."""
        return self.schema.json_schema if self.schema is not None else self.response_format

    def schema_name(self) -> str:
        return self.schema.name if self.schema is not None else "answer"

    def cache_key(self, provider: str, model: str) -> str:
        return digest({"provider": provider, "model": model, **self.params()})

    def chat(self) -> list[dict[str, str]]:
        """Messages with the system prompt, if any, as the first message."""
        if self.system is None:
            return list(self.messages)
        return [{"role": "system", "content": self.system}, *self.messages]


@dataclass
class Completion:
    """The answer to a `ChatRequest`. `texts` holds all `n` choices; `text` is the first."""

    texts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str | None = None
    latency_s: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    cached: bool = False
    # For a request with `choices`: each choice's probability (not normalised: what the model put on it).
    choice_probs: dict[str, float] | None = None

    @property
    def text(self) -> str | None:
        return self.texts[0] if self.texts else None

    @property
    def ok(self) -> bool:
        return self.error is None
