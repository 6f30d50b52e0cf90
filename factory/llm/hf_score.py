"""Choice scoring with a local `transformers` model: requests with `choices` get probabilities, not text.

The prompt is the chat template's generation prompt plus the request's `prefix` (the start of the
assistant's reply, e.g. `[[` before a score), so the model is asked at exactly the score position. Each
choice is tokenized in that context; `factory.llm.choices.plan` says which few token sequences to append
(for 1–10 on a digit-splitting tokenizer: just "1", which also gives the distribution before it), and one
right-padded forward pass over all of them gives every distribution needed. No sampling, no parsing.
"""

from __future__ import annotations

import time
from typing import Any

from factory.llm.choices import Tokens, masses, plan
from factory.llm.types import ChatRequest, Completion


def choice_ids(tok: Any, prompt_ids: list[int], prompt: str, choice: str) -> Tokens:
    """The tokens of `choice` as the model would write them right after `prompt` (merges at the seam kept)."""
    full = tok(prompt + choice, add_special_tokens=False, verbose=False)["input_ids"]
    if full[: len(prompt_ids)] == prompt_ids and len(full) > len(prompt_ids):
        return tuple(full[len(prompt_ids):])
    return tuple(tok(choice, add_special_tokens=False, verbose=False)["input_ids"])


def score_batch(gen: Any, requests: list[ChatRequest], batch_size: int) -> list[Completion]:
    """One `Completion` per request with `choice_probs` (the probability of each choice), in order."""
    import torch

    model_name = str(gen.model)
    jobs = []  # (request index, prompt ids, choice ids, [appended sequences])
    out: list[Completion | None] = [None] * len(requests)
    for i, req in enumerate(requests):
        try:
            text = gen._tok.apply_chat_template(req.chat(), tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # a template that rejects this conversation fails one row only
            out[i] = Completion(model=model_name, error=f"chat template failed: {exc}")
            continue
        text += req.prefix or ""
        ids = gen._tok(text, add_special_tokens=False, verbose=False)["input_ids"]
        if gen.context_length is not None and len(ids) + 4 > gen.context_length:
            out[i] = Completion(model=model_name, prompt_tokens=len(ids), error=(
                f"prompt is {len(ids)} tokens; the model's context is {gen.context_length} tokens"))
            continue
        cids = [choice_ids(gen._tok, ids, text, c) for c in req.choices or []]
        jobs.append((i, ids, cids, plan(cids)))
    # every (job, appended sequence) pair is one row of the forward passes
    rows = [(j, tail) for j, job in enumerate(jobs) for tail in job[3]]
    dists: dict[tuple[int, Tokens], Any] = {}
    pad = gen._tok.pad_token_id
    t0 = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        seqs = [list(jobs[j][1]) + list(tail) for j, tail in chunk]
        width = max(len(s) for s in seqs)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=gen.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=gen.device)
        with torch.inference_mode():
            logits = gen._model(input_ids=ids, attention_mask=mask).logits
        for b, (j, tail) in enumerate(chunk):
            n_prompt = len(jobs[j][1])
            # the distribution after prompt + tail[:k] sits at position n_prompt - 1 + k
            picked = logits[b, n_prompt - 1:n_prompt + len(tail)].float().log_softmax(-1).exp().cpu()
            for k in range(len(tail) + 1):
                dists[(j, tuple(tail[:k]))] = picked[k]
    latency = (time.perf_counter() - t0) / max(1, len(jobs))
    for j, (i, ids, cids, _) in enumerate(jobs):
        req = requests[i]
        probs = masses(cids, lambda context, token, j=j: float(dists[(j, context)][token]))
        best = max(range(len(probs)), key=probs.__getitem__) if probs else None
        out[i] = Completion(texts=[req.choices[best]] if best is not None else [], finish_reason="choices",
                            prompt_tokens=len(ids), completion_tokens=0, model=model_name, latency_s=latency,
                            choice_probs=dict(zip(req.choices or [], probs, strict=True)))
    return [c for c in out if c is not None]
