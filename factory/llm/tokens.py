"""Upper bounds on how many tokens a request can be billed for, for the budget's reservations.

A reservation must never be lower than what the provider then charges, or `--budget` can be crossed (a
4-characters-a-token guess spent $3.70 of a $2 budget on short-word prompts). With a tokenizer at hand the
count is exact plus the chat format's few tokens per message: tiktoken for OpenAI models, when its encoding
files are available offline (`TIKTOKEN_CACHE_DIR`; it never downloads here). Otherwise the bound is the
prompt's UTF-8 byte count: byte-level BPE tokenizers (GPT, Claude, Llama families) never emit more tokens
than bytes, so this over-reserves (about 4x for English) but cannot under-reserve.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from factory.llm.types import ChatRequest

PER_MESSAGE = 8  # role markers and separators of a chat template, per message (OpenAI uses 3-4)


@functools.lru_cache(maxsize=32)
def _tiktoken_encoder(model: str) -> Any | None:
    """tiktoken's encoding for `model`, or None when tiktoken, the model or its offline files are missing."""
    cache = os.environ.get("TIKTOKEN_CACHE_DIR")
    if not cache or not os.path.isdir(cache):
        return None  # without a local copy tiktoken would try to download its encoding files
    try:
        import tiktoken

        return tiktoken.encoding_for_model(model)
    except Exception:  # noqa: BLE001 - no module, unknown model, unreadable files: fall back to the bound
        return None


def text_token_bound(text: str, model: str = "") -> int:
    encoder = _tiktoken_encoder(model) if model else None
    if encoder is not None:
        return len(encoder.encode(text, disallowed_special=()))
    return len(text.encode("utf-8", errors="replace"))


def prompt_token_bound(request: ChatRequest, model: str = "") -> int:
    """At most how many prompt tokens one call with `request` is billed for."""
    parts = [request.system or ""] + [str(m.get("content") or "") for m in request.messages]
    return sum(text_token_bound(p, model) for p in parts) + PER_MESSAGE * (len(request.messages) + 1)
