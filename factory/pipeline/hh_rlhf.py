"""The `hh-rlhf` stage: HH-RLHF-style preference dialogues to TRL's `prompt`/`chosen`/`rejected` format.

Anthropic's HH-RLHF stores each pair as two full dialogues, `"\\n\\nHuman: ...\\n\\nAssistant: ..."`, that
agree up to the last assistant turn. This stage splits them: the shared turns become `prompt`, the two
final answers `chosen` and `rejected`. `format: conversational` (the default) writes lists of
`{role, content}` messages, as TRL's own hh-rlhf dataset script does; `format: standard` writes text, the
prompt ending in `"\\n\\nAssistant:"`. Pairs whose dialogues differ before the last answer, or that do not end
in an assistant turn, are dropped and counted. No LLM is involved; the version is named, stored and traced
like any other stage's (`factory lineage`).

    factory datasets import seeds:hh --name hh
    factory datasets convert hh-rlhf hh --name hh-dpo
"""

from __future__ import annotations

import re
from typing import Any, Literal

from factory.config import StrictModel
from factory.errors import FactoryError
from factory.pipeline.stage import Stage, polars_type
from factory.records import Paper

_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
_ROLES = {"Human": "user", "Assistant": "assistant"}


class HHConfig(StrictModel):
    format: Literal["conversational", "standard"] = "conversational"


def parse_dialogue(text: str) -> list[dict[str, str]] | None:
    """`"\\n\\nHuman: a\\n\\nAssistant: b"` -> [{user: a}, {assistant: b}]; None when it is not such a dialogue."""
    parts = _TURN.split(text if text.startswith("\n\n") else "\n\n" + text.lstrip("\n"))
    if parts[0].strip() or len(parts) < 3:
        return None
    return [{"role": _ROLES[role], "content": content.strip()} for role, content in zip(parts[1::2], parts[2::2],
                                                                                          strict=True)]


def split_pair(chosen: str, rejected: str) -> tuple[list[dict[str, str]], str, str] | None:
    """The shared prompt turns and the two final answers, or None when the pair does not split cleanly."""
    good, bad = parse_dialogue(chosen or ""), parse_dialogue(rejected or "")
    if not good or not bad or good[-1]["role"] != "assistant" or bad[-1]["role"] != "assistant":
        return None
    prompt = good[:-1]
    if not prompt or prompt != bad[:-1]:
        return None
    return prompt, good[-1]["content"], bad[-1]["content"]


def dialogue_text(turns: list[dict[str, str]]) -> str:
    names = {v: k for k, v in _ROLES.items()}
    return "".join(f"\n\n{names.get(t['role'], t['role'])}: {t['content']}" for t in turns)


class HHRLHF(Stage):
    """Split HH-RLHF-style chosen/rejected dialogues into prompt/chosen/rejected preference rows."""

    kind = "stage"
    name = "hh-rlhf"
    version = "1"
    paper = Paper(title="Training a Helpful and Harmless Assistant with Reinforcement Learning from Human Feedback",
                  url="https://arxiv.org/abs/2204.05862", authors="Bai et al.", year=2022)
    inputs = {"chosen": "str", "rejected": "str"}
    outputs = {"prompt": "list[message]", "chosen": "list[message]", "rejected": "list[message]"}
    Config = HHConfig

    def output_schema(self) -> dict[str, Any]:
        kind = "list[message]" if self.config.format == "conversational" else "str"
        return {col: polars_type(kind) for col in self.outputs}

    def check_result(self, counters: dict[str, int], source: Any) -> None:
        if not counters.get("kept"):
            raise FactoryError(f"no pair in {source.ref} splits into prompt/chosen/rejected (all "
                               f"{counters.get('dropped', 0)} dropped): are they HH-RLHF-style dialogues?")

    def convert(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            split = split_pair(row.get("chosen"), row.get("rejected"))
            if split is None:
                self.counters["dropped"] += 1
                continue
            prompt, chosen, rejected = split
            if self.config.format == "conversational":
                values = {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
                          "rejected": [{"role": "assistant", "content": rejected}]}
            else:
                values = {"prompt": dialogue_text(prompt) + "\n\nAssistant:", "chosen": " " + chosen,
                          "rejected": " " + rejected}
            out.append({**{k: v for k, v in row.items() if k not in values}, **values})
        return out

    async def process(self, rows: list[dict[str, Any]], llm: Any = None) -> list[dict[str, Any]]:
        return self.convert(rows)
