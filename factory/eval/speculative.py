"""Speculative decoding check (`factory eval speculative --target SPEC --draft SPEC --prompts REF`).

Each prompt is answered greedily twice by the target: alone, and with transformers' assisted generation
(`assistant_model=draft`), where the draft proposes a few tokens per step and the target verifies them in one
forward pass. Greedy assisted generation must give exactly the target's own output; the report says whether
it did, prompt by prompt.

Measured per step, from public hooks only: the draft's proposals are the argmax of each draft forward pass
(one proposed token per draft forward), and the tokens the target accepted arrive through the `streamer`
transformers calls once per step. accepted = the length of the common prefix of the two;
acceptance rate = accepted / proposed; mean accepted tokens per step = accepted / steps. A draft equal to the
target accepts every proposal (rate 1.0).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from factory.errors import BadInput

PROMPT_COLUMNS = ("prompt", "text", "question")


def prompt_messages(rows: list[dict[str, Any]], what: str) -> list[list[dict[str, str]]]:
    """The conversation to answer, per row: `messages` up to the last user turn, `instruction` (+ `input`), or a
    prompt/text/question column."""
    prompts = []
    for row in rows:
        turns = [m for m in row.get("messages") or [] if isinstance(m, dict) and m.get("role") != "system"]
        while turns and turns[-1].get("role") == "assistant":
            turns.pop()
        if turns:
            prompts.append([{"role": m["role"], "content": str(m.get("content") or "")} for m in turns])
            continue
        text = (row.get("instruction") or "").strip()
        extra = (row.get("input") or row.get("context") or "").strip()
        text = f"{text}\n\n{extra}" if text and extra else text
        text = text or next((str(row[c]).strip() for c in PROMPT_COLUMNS if str(row.get(c) or "").strip()), "")
        if text:
            prompts.append([{"role": "user", "content": text}])
    if not prompts:
        raise BadInput(f"prompts {what} have no text: no row has messages, instruction or "
                       f"{'/'.join(PROMPT_COLUMNS)}")
    return prompts


def check_same_vocabulary(target_tok: Any, draft_tok: Any, target: str, draft: str) -> None:
    a, b = target_tok.get_vocab(), draft_tok.get_vocab()
    if a != b:
        differ = sum(1 for token, i in a.items() if b.get(token) != i) + len(set(b) - set(a))
        raise BadInput(f"draft {draft} has a different vocabulary from target {target} ({len(b)} vs {len(a)} tokens, "
                       f"{differ} differ): assisted generation needs the same tokenizer")


class _StepRecorder:
    """A transformers streamer: the first `put` is the prompt, each later one the tokens one step accepted."""

    def __init__(self) -> None:
        self.prompt_seen = False
        self.steps: list[list[int]] = []
        self.proposals: list[list[int]] = []
        self.pending: list[int] = []

    def propose(self, token: int) -> None:
        self.pending.append(token)

    def put(self, value: Any) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            self.pending = []
            return
        self.steps.append([int(x) for x in value.reshape(-1).tolist()])
        self.proposals.append(self.pending)
        self.pending = []

    def end(self) -> None:
        pass

    def counts(self) -> tuple[int, int]:
        accepted = proposed = 0
        for tokens, proposal in zip(self.steps, self.proposals, strict=True):
            proposed += len(proposal)
            prefix = 0
            for x, y in zip(proposal, tokens, strict=False):
                if x != y:
                    break
                prefix += 1
            accepted += prefix
        return accepted, proposed


def _load(source: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    return tok, model


def _answer(ids: Any, out: Any, eos: set[int]) -> list[int]:
    tokens = out[0, ids.shape[1]:].tolist()
    end = next((i + 1 for i, t in enumerate(tokens) if t in eos), len(tokens))
    return tokens[:end]


def run_speculative(target: str, draft: str, prompts: list[list[dict[str, str]]], *, sources: tuple[str, str],
                    max_new_tokens: int = 64) -> dict[str, Any]:
    """Answer every prompt with the target alone and with the draft assisting; return the summary and rows."""
    import torch
    from transformers import AutoTokenizer

    target_source, draft_source = sources
    tok = AutoTokenizer.from_pretrained(target_source)
    check_same_vocabulary(tok, AutoTokenizer.from_pretrained(draft_source), target, draft)
    if not tok.chat_template:
        raise BadInput(f"target {target} has no chat template: use a chat/instruct model")
    _, target_model = _load(target_source)
    _, draft_model = _load(draft_source)  # its own instance even when draft = target: the hook counts its calls
    eos_id = target_model.generation_config.eos_token_id
    eos = set(eos_id if isinstance(eos_id, list) else [eos_id] if eos_id is not None else [])
    pad = tok.pad_token_id if tok.pad_token_id is not None else next(iter(eos), 0)
    recorder = _StepRecorder()
    hook = draft_model.register_forward_hook(
        lambda _m, _i, out: recorder.propose(int(out.logits[0, -1].argmax())))
    rows, totals = [], {"accepted": 0, "proposed": 0, "steps": 0, "tokens": 0, "plain_s": 0.0, "assisted_s": 0.0}
    try:
        for messages in prompts:
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
            kwargs = dict(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad,
                          attention_mask=torch.ones_like(ids))
            with torch.inference_mode():
                t0 = time.perf_counter()
                plain = target_model.generate(ids, **kwargs)
                t1 = time.perf_counter()
                recorder.__init__()
                assisted = target_model.generate(ids, assistant_model=draft_model, streamer=recorder, **kwargs)
                t2 = time.perf_counter()
            a, b = _answer(ids, plain, eos), _answer(ids, assisted, eos)
            accepted, proposed = recorder.counts()
            rows.append({"prompt": messages[-1]["content"], "tokens": len(a), "identical": a == b,
                         "accepted": accepted, "proposed": proposed, "steps": len(recorder.steps),
                         "answer": tok.decode(a, skip_special_tokens=True)})
            for key, value in (("accepted", accepted), ("proposed", proposed), ("steps", len(recorder.steps)),
                               ("tokens", len(a)), ("plain_s", t1 - t0), ("assisted_s", t2 - t1)):
                totals[key] += value
    finally:
        hook.remove()
    return {"target": target, "draft": draft, "prompts": len(rows), "max_new_tokens": max_new_tokens,
            **summarize(totals, rows), "rows": rows}


def summarize(t: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    def ratio(x: float, y: float) -> float | None:
        return x / y if y else None

    return {"acceptance_rate": ratio(t["accepted"], t["proposed"]), "accepted": t["accepted"],
            "proposed": t["proposed"], "steps": t["steps"],
            "mean_accepted_per_step": ratio(t["accepted"], t["steps"]),
            "tokens_per_s_target": ratio(t["tokens"], t["plain_s"]),
            "tokens_per_s_assisted": ratio(t["tokens"], t["assisted_s"]),
            "speedup": ratio(t["plain_s"], t["assisted_s"]),
            "identical": sum(1 for r in rows if r["identical"])}


def write_results(results: dict[str, Any], path: Path) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return path
