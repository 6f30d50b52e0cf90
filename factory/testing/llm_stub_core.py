"""The provider-neutral half of the stub LLM server: config, replies, token counting, faults, counters.

`llm_stub_openai` and `llm_stub_anthropic` turn their wire format into a `Call` and a list of `Choice`s
back into their wire format; everything that must behave the same for both APIs lives here, so a test
can reason about one set of rules:

* **Replies.** Without a responder, choice `i` of a call is
  ``"stub answer <h8>: " + <first 20 whitespace words of the last user message>`` where `h8` is the first
  8 hex digits of ``sha256(canonical_json({model, system, messages, seed, choice: i}))``. `default_reply`
  computes it, so a test can predict an answer. With a JSON response format the reply is a JSON document
  instead (`{"answer": <reply>}`, or a minimal instance of the requested JSON schema).
* **Tokens** are whitespace words (`count_tokens`): prompt tokens are the words of the system prompt
  plus every message's text; completion tokens are the words of each returned choice, summed over
  choices. `max_tokens` truncates a reply to that many words (finish reason "length" / "max_tokens");
  a stop sequence cuts the reply before its first occurrence.
* **Faults** are decided per (request key, attempt number), not by arrival order, so they are the same
  under any concurrency: first by `script` (the fault of the 1st, 2nd, ... attempt of every distinct
  request), then by the `rate_*` fractions against a hash of (`fault_seed`, key, attempt).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# What a responder may return for one choice (str) or for all choices at once (list[str]). A dict
# `{"text": ..., "alternatives": {token: {alt: logprob, ...}}}` answers one choice and says, for requests that
# ask for logprobs, the top alternatives at each reply token equal to a key (other tokens: themselves, 0.0).
Responder = Callable[[dict[str, Any]], "str | list[str] | dict[str, Any]"]

OK = "ok"
FAULTS = ("429", "500", "timeout", "malformed")
ECHO_WORDS = 20


def _help(text: str, flag: str | None = None) -> dict[str, Any]:
    return {"help": text, "flag": flag}


@dataclass(frozen=True)
class StubConfig:
    """Everything about the stub that a test or the CLI may set; also the body of `POST /_stub/config`.

    Each field is a CLI flag of `python -m factory.testing.llm_stub` (`--rate-429`, ...); tuples are
    comma-separated there. The config is immutable and swapped whole, so a request never sees half a change.
    """

    latency_s: float = field(default=0.0, metadata=_help("seconds every answered call waits", "--latency"))
    jitter_s: float = field(default=0.0, metadata=_help("extra wait, uniform in [0, jitter_s)", "--jitter"))
    rate_429: float = field(default=0.0, metadata=_help("fraction of calls answered 429"))
    rate_500: float = field(default=0.0, metadata=_help("fraction of calls answered 500"))
    rate_timeout: float = field(default=0.0, metadata=_help("fraction of calls that hang for hang_s"))
    rate_malformed: float = field(default=0.0, metadata=_help("fraction of calls answered 200 with truncated JSON"))
    retry_after: str = field(default="1", metadata=_help("Retry-After header of 429s; empty: no header"))
    hang_s: float = field(default=60.0, metadata=_help("how long a 'timeout' call hangs before answering", "--hang"))
    fault_seed: int = field(default=0, metadata=_help("seed of the random fault draw"))
    script: tuple[str, ...] = field(
        default=(),
        metadata=_help("fault of attempt 1, 2, ... of each distinct request: ok|429|500|timeout|malformed|NNN"),
    )
    fault_match: str = field(default="", metadata=_help("only requests whose raw body contains this get faults"))
    valid_keys: tuple[str, ...] = field(default=(), metadata=_help("accepted API keys; empty: any non-bad key"))
    bad_keys: tuple[str, ...] = field(default=("bad-key",), metadata=_help("API keys answered 401"))
    missing_models: tuple[str, ...] = field(default=("missing*",), metadata=_help("model patterns answered 404"))
    models: tuple[str, ...] = field(default=("stub-model",), metadata=_help("models listed by GET /v1/models"))
    batch_latency_s: float = field(default=0.2, metadata=_help("seconds before a batch is done", "--batch-latency"))
    batch_max_requests: int = field(default=100_000, metadata=_help("most requests in one batch; more: 400"))
    price_input: float = field(default=0.0, metadata=_help("USD per 1M prompt tokens, for the `usd` spent counter"))
    price_output: float = field(default=0.0, metadata=_help("USD per 1M completion tokens, likewise"))

    def __post_init__(self) -> None:
        for name in ("script", "valid_keys", "bad_keys", "missing_models", "models"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = tuple(v for v in value.split(",") if v)
            object.__setattr__(self, name, tuple(str(v) for v in value))
        rates = (self.rate_429, self.rate_500, self.rate_timeout, self.rate_malformed)
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError(f"fault rates must lie in [0, 1] and sum to at most 1, got {rates}")
        for fault in self.script:
            if fault not in (OK, *FAULTS) and not (fault.isdigit() and 400 <= int(fault) <= 599):
                raise ValueError(f"unknown scripted fault {fault!r}: use ok, 429, 500, timeout, malformed or a status")

    def replace(self, **changes: Any) -> StubConfig:
        """A copy with `changes`; unknown names raise, so a typo in a test is an error that names the key."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown stub config keys {unknown}; known: {sorted(known)}")
        return StubConfig(**{**asdict(self), **changes})

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def is_missing(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.missing_models)

    def key_ok(self, key: str) -> bool:
        if not key or key in self.bad_keys:
            return False
        return not self.valid_keys or key in self.valid_keys


@dataclass
class Call:
    """One chat call, the same for both APIs. `messages` hold text only; `body` is the parsed request."""

    api: str
    model: str
    messages: list[dict[str, str]]
    system: str | None = None
    n: int = 1
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    temperature: float | None = None
    json_mode: bool = False
    schema: dict[str, Any] | None = None
    tool: str | None = None  # Anthropic: the tool a forced tool call must use
    body: dict[str, Any] = field(default_factory=dict)

    def prompt(self) -> str:
        """The last user message: what the default reply echoes."""
        return next((m["content"] for m in reversed(self.messages) if m.get("role") == "user"), "")

    def prompt_tokens(self) -> int:
        return count_tokens(self.system or "") + sum(count_tokens(m["content"]) for m in self.messages)

    def for_responder(self, choice: int) -> dict[str, Any]:
        return {
            "api": self.api, "choice": choice, "model": self.model, "system": self.system,
            "messages": self.messages, "prompt": self.prompt(), "n": self.n, "max_tokens": self.max_tokens,
            "stop": self.stop, "seed": self.seed, "temperature": self.temperature, "json_mode": self.json_mode,
            "schema": self.schema, "body": self.body,
        }  # fmt: skip


@dataclass
class Choice:
    text: str
    finish: str  # "stop", "length" or "stop_sequence"; each API maps it to its own words
    stop_sequence: str | None = None
    alternatives: dict[str, dict[str, float]] = field(default_factory=dict)

    def logprobs(self) -> dict[str, Any]:
        """OpenAI's `logprobs` object for this reply: tokens are runs of digits, of letters, or single marks."""
        import re

        content = []
        for token in re.findall(r"\d+|[A-Za-z]+|\s+|[^\w\s]{1,2}", self.text):
            top = self.alternatives.get(token) or {token: 0.0}
            content.append({"token": token, "logprob": top.get(token, max(top.values())), "bytes": None,
                            "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top.items()]})
        return {"content": content, "refusal": None}

    @property
    def tokens(self) -> int:
        return count_tokens(self.text)


def count_tokens(text: str) -> int:
    """The stub's tokenizer: whitespace-separated words."""
    return len(text.split())


def text_of(content: Any) -> str:
    """Message content as text: a string, or the text parts of a content list joined by spaces."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _sha(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def request_key(body: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a request body: what `stats()["by_key"]` counts by."""
    return _sha(body)


def default_reply(
    model: str, messages: list[dict[str, str]], *, system: str | None = None, seed: int | None = None, choice: int = 0
) -> str:
    """The stub's answer to a call when no responder is set (before `max_tokens` and stop sequences)."""
    msgs = [{"role": m.get("role", ""), "content": text_of(m.get("content"))} for m in messages]
    h8 = _sha({"model": model, "system": system, "messages": msgs, "seed": seed, "choice": choice})[:8]
    prompt = next((m["content"] for m in reversed(msgs) if m["role"] == "user"), "")
    return f"stub answer {h8}: " + " ".join(prompt.split()[:ECHO_WORDS])


def _fill_schema(schema: dict[str, Any], text: str, root: dict[str, Any]) -> Any:
    """A small instance of a JSON schema: enough for structured-output parsers to accept it."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {})
        return _fill_schema(target, text, root)
    for union in ("anyOf", "oneOf", "allOf"):
        if schema.get(union):
            return _fill_schema(schema[union][0], text, root)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    digit = int(_sha(text)[:2], 16) % 10  # a stable small number, so score fields vary between prompts
    simple = {"string": text, "integer": digit, "number": float(digit), "boolean": True, "null": None}
    if kind in simple:
        return simple[kind]
    if kind == "array":
        return [_fill_schema(schema.get("items", {"type": "string"}), text, root)]
    return {k: _fill_schema(v, text, root) for k, v in schema.get("properties", {}).items()}


def make_choices(call: Call, responder: Responder | None) -> list[Choice]:
    """The `n` choices of a call: responder's or default texts, then stop sequences and `max_tokens`."""
    texts: list[str] = []
    alternatives: list[dict[str, dict[str, float]]] = []
    for i in range(call.n):
        if responder is None:
            text = default_reply(call.model, call.messages, system=call.system, seed=call.seed, choice=i)
            if call.schema is not None:
                text = json.dumps(_fill_schema(call.schema, text, call.schema))
            elif call.json_mode:
                text = json.dumps({"answer": text})
            texts.append(text)
            continue
        got = responder(call.for_responder(i))
        if isinstance(got, dict):
            alternatives.append(got.get("alternatives") or {})
            texts.append(str(got["text"]))
            continue
        if isinstance(got, list):
            # A list answers all choices at once; it is cycled if shorter than n.
            texts = [str(got[j % len(got)]) for j in range(call.n)] if got else [""] * call.n
            break
        texts.append(str(got))
        alternatives.append({})
    choices = [_finish(t, call) for t in texts]
    if len(alternatives) == len(choices):  # (a responder's list answers all choices and names no alternatives)
        for choice, alts in zip(choices, alternatives, strict=True):
            choice.alternatives = alts
    return choices


def _finish(text: str, call: Call) -> Choice:
    hits = [(text.find(s), s) for s in call.stop if s and s in text]
    stop_sequence = None
    if hits:
        cut, stop_sequence = min(hits)
        text = text[:cut]
    if call.max_tokens is not None and count_tokens(text) > call.max_tokens:
        return Choice(" ".join(text.split()[: call.max_tokens]), "length")
    return Choice(text, "stop_sequence" if stop_sequence else "stop", stop_sequence)


def pick_fault(config: StubConfig, key: str, attempt: int, raw: bytes) -> str:
    """The fault for `attempt` (1-based) of the request `key`: "ok", a `FAULTS` name or a status code."""
    if config.fault_match and config.fault_match.encode() not in raw:
        return OK
    if attempt <= len(config.script):
        return config.script[attempt - 1]
    rates = (config.rate_429, config.rate_500, config.rate_timeout, config.rate_malformed)
    if not any(rates):
        return OK
    u = unit(config.fault_seed, key, attempt, "fault")
    for fault, rate in zip(FAULTS, rates, strict=True):
        if u < rate:
            return fault
        u -= rate
    return OK


def unit(*parts: Any) -> float:
    """A reproducible number in [0, 1) from `parts`."""
    return int(hashlib.sha256(repr(parts).encode()).hexdigest()[:13], 16) / 16**13


class Stats:
    """Counters of one server. Written from the server's loop thread, read from any thread, hence the lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.prompt_tokens = 0
            self.completion_tokens = 0
            self.by_status: Counter[str] = Counter()
            self.by_api: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.by_key: Counter[str] = Counter()
            self.ok_by_key: Counter[str] = Counter()
            self.arrivals: list[float] = []  # time.time() of each call, for requests per second across processes
            self.usd = 0.0

    def begin(self, api: str, key: str) -> int:
        """Count a call; its attempt number (1 for the first time this body is seen since the last reset)."""
        with self.lock:
            self.requests += 1
            self.by_api[api] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.by_key[key] += 1
            self.arrivals.append(time.time())
            return self.by_key[key]

    def end(self, key: str, status: int | None, fault: str, usage: tuple[int, int] = (0, 0),
            price: tuple[float, float] = (0.0, 0.0)) -> None:
        """Record how a call ended; `status` None when the client went away before the answer; `price` (USD per 1M
        prompt, completion tokens) books what the answer cost."""
        with self.lock:
            self.in_flight -= 1
            if status is not None:
                self.by_status[str(status)] += 1
            if fault != OK:
                self.faults[fault] += 1
            if status == 200 and fault == OK:
                self.ok_by_key[key] += 1
                self.prompt_tokens += usage[0]
                self.completion_tokens += usage[1]
                self.usd += (usage[0] * price[0] + usage[1] * price[1]) / 1e6

    def snapshot(self) -> dict[str, Any]:
        """All counters as plain JSON-able data (status codes as strings, as in `GET /_stub/stats`).

        `repeated` counts calls whose body had been seen before; `repeated_ok` counts bodies answered
        successfully more than once (what a resumed run must keep at 0 for rows it had finished).
        The token totals add up the `usage` of successful (200, no fault) answers only, and `usd` what they cost at
        the config's `price_input`/`price_output`. `per_second` counts calls by arrival, the first call's second
        being 0; `arrivals` are their `time.time()` stamps.
        """
        with self.lock:
            return {
                "requests": self.requests, "in_flight": self.in_flight, "max_in_flight": self.max_in_flight,
                "by_status": dict(self.by_status), "by_api": dict(self.by_api), "faults": dict(self.faults),
                "by_key": dict(self.by_key), "ok_by_key": dict(self.ok_by_key),
                "repeated": sum(c - 1 for c in self.by_key.values()),
                "repeated_ok": sum(c - 1 for c in self.ok_by_key.values()),
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "usd": self.usd, "arrivals": list(self.arrivals), "per_second": _per_second(self.arrivals),
            }  # fmt: skip


def _per_second(stamps: list[float]) -> dict[str, int]:
    counts: Counter[str] = Counter(str(int(t - stamps[0])) for t in stamps) if stamps else Counter()
    return dict(counts)
