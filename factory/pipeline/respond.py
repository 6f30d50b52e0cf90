"""The `respond` stage: a model answers each row's instruction (used by `factory generate`)."""

from __future__ import annotations

from typing import Any

import polars as pl

from factory.errors import BadInput
from factory.llm.types import ChatRequest, Completion
from factory.pipeline.llm_stage import MESSAGES, LLMStage, user_turn
from factory.store import StageInfo

STAGE = StageInfo(kind="stage", name="respond", version="1")


def respond_stage(columns: list[str], system: str | None = None, temperature: float = 0.7, max_tokens: int = 512,
                  seed: int | None = None) -> LLMStage:
    if "instruction" not in columns and "messages" not in columns:
        raise BadInput(f"rows need an `instruction` or `messages` column (have: {', '.join(columns)}); "
                       "rename one with `factory datasets import ... --map instruction=COLUMN`")

    def prompt(row: dict[str, Any]) -> list[dict[str, str]]:
        if row.get("instruction"):
            return [{"role": "user", "content": user_turn(row)}]
        turns = [m for m in row.get("messages") or [] if m["role"] != "system"]
        while turns and turns[-1]["role"] == "assistant":  # answer the last user turn afresh
            turns.pop()
        return turns

    def request(row: dict[str, Any]) -> ChatRequest:
        return ChatRequest(messages=prompt(row), system=row.get("system") or system, temperature=temperature,
                           max_tokens=max_tokens, seed=seed, meta={"id": row.get("id")})

    def merge(row: dict[str, Any], c: Completion) -> dict[str, Any]:
        text = c.text if c.error is None else None
        messages = None
        if text is not None:
            sys_prompt = row.get("system") or system
            head = [{"role": "system", "content": sys_prompt}] if sys_prompt else []
            messages = [*head, *prompt(row), {"role": "assistant", "content": text}]
        return {**row, "response": text, "messages": messages, "model": c.model, "error": c.error}

    return LLMStage(stage=STAGE, config={"system": system, "temperature": temperature, "max_tokens": max_tokens,
                                         "seed": seed},
                    request=request, merge=merge,
                    columns={"response": pl.String, "messages": MESSAGES, "model": pl.String, "error": pl.String})
