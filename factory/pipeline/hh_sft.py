"""The `hh-sft` stage: HH-RLHF-style dialogues to SFT conversations (`messages`), from the chosen side.

OpenBezoar fine-tunes on the first 100K HH-RLHF examples before DPO, "to minimize distribution shift": the
chosen dialogue, every turn of it, is the conversation to imitate. Rows whose `chosen` is not a
`"\\n\\nHuman: ...\\n\\nAssistant: ..."` dialogue ending in an assistant turn are dropped and counted.

    factory datasets import Anthropic/hh-rlhf --name hh --split "train[:100000]"
    factory datasets convert hh-sft hh --name hh-sft
"""

from __future__ import annotations

from typing import Any

from factory.config import StrictModel
from factory.errors import FactoryError
from factory.pipeline.hh_rlhf import HHRLHF, parse_dialogue
from factory.pipeline.stage import Stage


class HHSFTConfig(StrictModel):
    """No options: the chosen dialogue is the conversation."""


class HHSFT(Stage):
    """The chosen side of HH-RLHF-style preference dialogues as SFT conversations."""

    kind = "stage"
    name = "hh-sft"
    version = "1"
    paper = HHRLHF.paper
    inputs = {"chosen": "str"}
    outputs = {"messages": "list[message]"}
    Config = HHSFTConfig

    def check_result(self, counters: dict[str, int], source: Any) -> None:
        if not counters.get("kept"):
            raise FactoryError(f"no row of {source.ref} holds a Human/Assistant dialogue in `chosen` (all "
                               f"{counters.get('dropped', 0)} dropped): are they HH-RLHF-style dialogues?")

    async def process(self, rows: list[dict[str, Any]], llm: Any = None) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            turns = parse_dialogue(row.get("chosen") or "")
            if not turns or turns[-1]["role"] != "assistant" or any(not t["content"] for t in turns):
                self.counters["dropped"] += 1
                continue
            out.append({**{k: v for k, v in row.items() if k not in ("chosen", "rejected")}, "messages": turns})
        return out
