"""Block pruning by angular distance (Gromov et al. 2024, "The Unreasonable Ineffectiveness of the Deeper Layers").

For a span of n blocks starting at l, the distance d(l) = arccos(cos(x_l, x_{l+n})) / π between the hidden state
entering block l and the one leaving block l+n-1, averaged over every (non-padding) token of the calibration
texts; the span with the smallest d changes the residual stream least and is removed. One forward pass per
calibration batch gives all x_l (`output_hidden_states`); transformers returns the *normed* last hidden state
there, so the last block's raw output comes from a forward hook instead.

Removing a span deletes the decoder layers, renumbers the remaining layers' `self_attn.layer_idx` (the KV cache
indexes by it), sets `num_hidden_layers` and drops the span's entries from per-layer config lists
(`layer_types`, ...). The tokenizer and chat template are saved unchanged beside the weights.

    distances = angular_distances(model, tokenizer, texts, blocks=4)   # one value per start block
    remove_span(model, start=min_index(distances), blocks=4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.errors import BadInput

# Decoder stacks at `model.model.layers` whose attention modules carry `layer_idx` (SmolLM2 is a Llama).
SUPPORTED = ("llama", "mistral", "qwen2", "qwen3", "smollm3")
TEXT_COLUMNS = ("text", "prompt", "instruction", "input", "context", "response", "output", "targets")


@dataclass
class ModelShape:
    model_type: str
    blocks: int


def model_shape(source: str | Path, model_init: dict[str, Any] | None = None) -> ModelShape:
    """The architecture and block count from config.json alone (no weights loaded): checked before anything."""
    from transformers import AutoConfig

    from factory.trainers.model import tokenizer_kwargs

    try:
        config = AutoConfig.from_pretrained(str(source), **tokenizer_kwargs(model_init or {}))
    except (OSError, ValueError) as exc:
        raise BadInput(f"cannot read the config of {source}: {str(exc).strip().splitlines()[0]}") from None
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    if config.model_type not in SUPPORTED:
        raise BadInput(f"cannot prune {source}: architecture {config.model_type!r} is not a supported decoder stack "
                       f"({', '.join(SUPPORTED)})")
    return ModelShape(config.model_type, int(config.num_hidden_layers))


def check_blocks(blocks: int, total: int) -> None:
    if blocks <= 0 or blocks >= total:
        raise BadInput(f"--blocks must be between 1 and {total - 1} (the model has {total} blocks), got {blocks}")


def calibration_texts(rows: list[dict[str, Any]], tokenizer: Any, what: str) -> list[str]:
    """One text per row: `messages` through the chat template (what the model sees), else the text columns."""
    texts = []
    for row in rows:
        messages = row.get("messages")
        if isinstance(messages, list) and messages:
            if tokenizer is not None and tokenizer.chat_template:
                text = tokenizer.apply_chat_template(messages, tokenize=False)
            else:
                text = "\n".join(str(m.get("content") or "") for m in messages)
        else:
            text = "\n\n".join(str(row[c]) for c in TEXT_COLUMNS if isinstance(row.get(c), str) and row[c].strip())
        if text.strip():
            texts.append(text)
    if not texts:
        columns = sorted({k for r in rows for k in r}) or ["none"]
        raise BadInput(f"calibration set {what} has no text: no row has messages or any of "
                       f"{', '.join(TEXT_COLUMNS)} (has: {', '.join(columns)})")
    return texts


def decoder_layers(model: Any) -> Any:
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise BadInput(f"cannot prune {type(model).__name__}: no decoder stack at model.model.layers")
    return layers


def angular_distances(model: Any, tokenizer: Any, texts: list[str], blocks: int, batch_size: int = 8,
                      max_length: int = 512) -> list[float]:
    """Mean angular distance (in [0, 1]) between x_l and x_{l+blocks}, for every start l = 0 .. L-blocks."""
    import torch

    layers = decoder_layers(model)
    total = len(layers)
    check_blocks(blocks, total)
    last_output: list[Any] = []
    hook = layers[-1].register_forward_hook(
        lambda _m, _i, out: last_output.append(out[0] if isinstance(out, tuple) else out))
    sums = torch.zeros(total - blocks + 1, dtype=torch.float64)
    count = 0
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True, truncation=True,
                              max_length=max_length, add_special_tokens=False).to(model.device)
            last_output.clear()
            with torch.inference_mode():
                out = model(**batch, output_hidden_states=True, use_cache=False)
            states = [*out.hidden_states[:total], last_output[-1]]  # x_0 .. x_L, all before the final norm
            mask = batch["attention_mask"].bool()
            for index in range(total - blocks + 1):
                a, b = states[index][mask].double(), states[index + blocks][mask].double()
                cos = torch.nn.functional.cosine_similarity(a, b, dim=-1).clamp(-1.0, 1.0)
                sums[index] += (torch.arccos(cos) / math.pi).sum()
            count += int(mask.sum())
    finally:
        hook.remove()
        tokenizer.padding_side = side
    return (sums / max(count, 1)).tolist()


def best_start(distances: list[float]) -> int:
    """The start of the span with the smallest distance (the earliest, on a tie)."""
    return min(range(len(distances)), key=lambda i: (distances[i], i))


def remove_span(model: Any, start: int, blocks: int) -> None:
    """Delete decoder layers start .. start+blocks-1 in place and make the config and KV-cache indices agree."""
    import torch

    layers = decoder_layers(model)
    total = len(layers)
    if not 0 <= start <= total - blocks:
        raise BadInput(f"span {start}..{start + blocks - 1} is outside the model's {total} blocks")
    kept = [layer for i, layer in enumerate(layers) if not start <= i < start + blocks]
    for index, layer in enumerate(kept):
        for module in layer.modules():  # self_attn.layer_idx, and any other module that indexes the cache
            if hasattr(module, "layer_idx"):
                module.layer_idx = index
    model.model.layers = torch.nn.ModuleList(kept)
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    for key, value in list(vars(config).items()):
        if _per_layer(key, value, total):
            setattr(config, key, [v for i, v in enumerate(value) if not start <= i < start + blocks])
    config.num_hidden_layers = len(kept)


def _per_layer(key: str, value: Any, total: int) -> bool:
    """A config list with one entry per block (`layer_types`, ...); token-id lists merely happen to be lists."""
    return isinstance(value, (list, tuple)) and len(value) == total and "token" not in key


def parameter_count(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def flops_per_token(config: Any, context: int) -> int:
    """Forward-pass FLOPs per token at `context` tokens of context (2 FLOPs per multiply-add), analytically:
    per block the q/k/v/o projections, attention scores and mixing over the context, and the gated MLP; plus the
    LM head. Embedding lookups and norms are negligible and left out."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    h = config.hidden_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    q, kv = heads * head_dim, kv_heads * head_dim
    attention = 2 * h * (q + 2 * kv) + 2 * q * h + 2 * 2 * context * q
    mlp = 2 * 3 * h * config.intermediate_size
    return int(config.num_hidden_layers * (attention + mlp) + 2 * h * config.vocab_size)
