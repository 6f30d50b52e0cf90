"""Orca: a teacher answers FLAN-style queries under system messages that ask it to explain step by step.

The sixteen system messages (written for this project after the Orca paper's list) live in
`prompts/system_messages.txt`. Which ones a query may draw depends on its template type, as in the paper:
chain-of-thought queries get the step-by-step messages, multiple-choice queries those that justify a choice.
The chosen system message becomes the first turn of `messages` and is kept in the `system` column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from factory.records import Paper
from factory.schemes import SCHEMES
from factory.schemes.base import COMMON_OUTPUTS, Scheme, SchemeConfig

# 1-based indices into system_messages.txt, by FLAN template type
DEFAULT_SYSTEM_SETS = {
    "cot": [3, 12, 13, 16],
    "zs_opt": [2, 5, 7, 10, 14], "fs_opt": [2, 5, 7, 10, 14],
    "zs_noopt": [1, 4, 6, 8, 9, 11, 15], "fs_noopt": [1, 4, 6, 8, 9, 11, 15],
    "default": list(range(1, 17)),
}


class OrcaConfig(SchemeConfig):
    max_tokens: int = Field(1024, ge=1, description="max tokens of a teacher explanation")
    system_sets: dict[str, list[int]] = Field(default_factory=lambda: dict(DEFAULT_SYSTEM_SETS),
                                              description="template type -> allowed system messages (1-based)")

    @field_validator("system_sets")
    @classmethod
    def _ids_exist(cls, value: dict[str, list[int]]) -> dict[str, list[int]]:
        count = len(system_messages())
        for kind, ids in value.items():
            if not ids or any(not 1 <= i <= count for i in ids):
                raise ValueError(f"{kind}: ids must be between 1 and {count}")
        return value


def system_messages() -> list[str]:
    """The system messages of prompts/system_messages.txt, one a line (part of the scheme's prompts)."""
    path = Path(__file__).parent / "prompts" / "system_messages.txt"
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@SCHEMES.register
class Orca(Scheme):
    """Explanation tuning: teacher answers to FLAN queries under step-by-step system messages (Orca)."""

    name = "orca"
    small_model = ("poorly: step-by-step explanations under Orca's system messages need a capable teacher; "
                   "a small model's are short and often wrong")
    version = "1"
    paper = Paper(title="Orca: Progressive Learning from Complex Explanation Traces of GPT-4",
                  url="https://arxiv.org/abs/2306.02707", authors="Mukherjee et al.", year=2023)
    inputs = {"inputs": "str", "targets": "str"}
    reads = {"task": "str"}
    prompt_columns = ("inputs",)  # the query; an empty reference answer still gets the teacher's
    outputs = {**COMMON_OUTPUTS, "system": "str", "system_id": "int", "task": "str", "targets": "str"}
    Config = OrcaConfig

    def pick_system(self, row: dict[str, Any]) -> int:
        sets = self.config.system_sets
        allowed = sets.get(str(row.get("template_type") or ""), sets.get("default", DEFAULT_SYSTEM_SETS["default"]))
        return self.rng(row.get("id") or row["inputs"]).choice(allowed)

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        messages = system_messages()
        picks = [self.pick_system(r) for r in rows]
        answers = await llm.generate([self.response_request(r["inputs"], system=messages[k - 1])
                                      for r, k in zip(rows, picks, strict=True)])
        out = []
        for row, k, answer in zip(rows, picks, answers, strict=True):
            out.append(self.row(instruction=row["inputs"], response=answer.text, model=answer.model,
                                error=answer.error, seed_id=str(row.get("id") or ""), system=messages[k - 1],
                                system_id=k, task=row.get("task"), targets=row.get("targets")))
        return out
