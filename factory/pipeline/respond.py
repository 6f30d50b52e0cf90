"""The `respond` stage: a model answers each row's instruction (`factory generate`).

Rows need `instruction` (with optional `input`/`context`) or `messages`; a `system` column, when present,
wins over the configured system prompt. The answer goes to `response`, the whole conversation to
`messages`, and a failed call keeps the row with `error` set. With `response_schema` every answer is validated
(retried, then failed) and its fields are stored as typed columns next to `response`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from factory.config import StrictModel
from factory.errors import BadInput
from factory.llm.types import ChatRequest
from factory.pipeline.stage import Stage, schema_columns, schema_recipe, structured_schema, structured_values
from factory.records import conversation, user_turn


class RespondConfig(StrictModel):
    system: str | None = Field(None, description="System prompt for every row (a `system` column, if present, wins).")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature.")
    max_tokens: int = Field(512, ge=1, description="Longest answer, in tokens.")
    seed: int | None = Field(None, description="Sampling seed sent with each request (where the provider supports "
                                                "it).")
    response_schema: str | None = Field(None, description="Structured output: a pydantic model or JSON Schema file "
                                                          "each answer must match; its fields are stored as typed "
                                                          "columns.")


class Respond(Stage):
    """A model answers each row's instruction."""

    kind = "stage"
    name = "respond"
    version = "1"
    outputs = {"response": "str", "messages": "list[message]", "model": "str", "error": "str"}
    reads = {"instruction": "str", "input": "str", "context": "str", "system": "str", "messages": "list[message]"}
    Config = RespondConfig

    def __init__(self, config: RespondConfig | None = None):
        super().__init__(config)
        self.schema = structured_schema(self.config.response_schema, tuple(self.outputs))

    def recipe(self) -> dict[str, Any]:
        return schema_recipe(super().recipe(), self.schema)

    def output_schema(self) -> dict[str, Any]:  # type: ignore[override]
        return {**super().output_schema(), **schema_columns(self.schema)}

    @classmethod
    def check_inputs(cls, columns: list[str], what: str) -> None:
        if "instruction" not in columns and "messages" not in columns:
            raise BadInput(f"{what} needs an `instruction` or `messages` column (has: {', '.join(columns)}); "
                           "rename one with `factory datasets import ... --map instruction=COLUMN`")

    def blank(self, row: dict[str, Any]) -> str | None:
        if any(m["role"] == "user" and (m.get("content") or "").strip() for m in self.prompt(row)):
            return None
        return "instruction is empty" if "messages" not in row else "no user turn to answer"

    @staticmethod
    def prompt(row: dict[str, Any]) -> list[dict[str, str]]:
        if (row.get("instruction") or "").strip():
            return [{"role": "user", "content": user_turn(row)}]
        turns = [m for m in row.get("messages") or [] if m["role"] != "system"]
        while turns and turns[-1]["role"] == "assistant":  # answer the last user turn afresh
            turns.pop()
        return turns

    def request(self, row: dict[str, Any]) -> ChatRequest:
        c = self.config
        return ChatRequest(messages=self.prompt(row), system=row.get("system") or c.system,
                           temperature=c.temperature, max_tokens=c.max_tokens, seed=c.seed, schema=self.schema)

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        answers = await llm.generate([self.request(r) for r in rows])
        out = []
        for row, c in zip(rows, answers, strict=True):
            typed, error = structured_values(self.schema, c)
            messages = None
            if error is None:
                messages = conversation(row.get("system") or self.config.system, self.prompt(row), c.text)
            out.append({**row, "response": c.text if error is None else None, "messages": messages,
                        "model": c.model, "error": error, **typed})
        return out
