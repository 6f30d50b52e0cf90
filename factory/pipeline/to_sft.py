"""The `sft` conversion: instruction/input/response rows (dolly, Alpaca, FLAN targets) -> TRL `messages`.

So seed or imported data can go straight to `factory train sft`. A `system` column, when present, opens
the conversation. Rows without an instruction or a response are dropped and counted.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from factory.config import StrictModel
from factory.pipeline.stage import Stage
from factory.records import conversation, user_turn


class SFTConfig(StrictModel):
    response_column: str = Field("response", description="the column holding the answer")


class ToSFT(Stage):
    """Builds `messages` (system?, user, assistant) from instruction, input/context and response."""

    kind = "stage"
    name = "sft"
    version = "1"
    inputs = {"instruction": "str"}
    outputs = {"messages": "list[message]", "input": "str"}
    Config = SFTConfig

    def check_inputs(self, columns: list[str], what: str) -> None:
        from factory.store.sources import require_columns

        require_columns(columns, ["instruction", self.config.response_column], what)

    async def process(self, rows: list[dict[str, Any]], llm: Any = None) -> list[dict[str, Any]]:
        out = []
        for row in rows:
            answer = row.get(self.config.response_column)
            if not (row.get("instruction") or "").strip() or not (answer or "").strip():
                self.counters["dropped"] += 1
                continue
            messages = conversation(row.get("system"), [{"role": "user", "content": user_turn(row)}], answer)
            out.append({**row, "input": row.get("input") or row.get("context") or "", "messages": messages})
        return out
