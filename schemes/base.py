"""What the generation schemes share: their config fields, output row shape, response step and parsers.

A scheme is a `Stage` of kind "scheme". Its output rows follow docs/records.md: `instruction`, `input`,
`response`, `messages`, plus provenance (`scheme`, `model`, `seed_id`) and `error` when a call failed.
Randomness (which operation, which examples) comes from `rng(...)`, seeded by the config's `seed` and the
row, so results do not depend on batch boundaries or concurrency.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field

from factory.config import StrictModel
from factory.hashing import short_digest
from factory.llm.types import ChatRequest, Completion
from factory.pipeline.stage import Stage, schema_columns, schema_recipe, structured_schema, structured_values
from factory.records import conversation

COMMON_OUTPUTS = {"id": "str", "instruction": "str", "input": "str", "response": "str",
                  "messages": "list[message]", "scheme": "str", "model": "str", "seed_id": "str", "error": "str"}


class SchemeConfig(StrictModel):
    seed: int = Field(0, ge=0, lt=2**64, description="Seed for the scheme's random choices (same as --set seed=S).")
    temperature: float = Field(0.7, ge=0, description="teacher sampling temperature")
    max_tokens: int = Field(768, ge=1, description="max tokens of a teacher response")
    response_system: str | None = Field(None, description="system prompt for the response step")
    response_schema: str | None = Field(None, description="structured output of the response step: a pydantic "
                                                          "model (module:Class) or JSON Schema file; typed columns")


class Scheme(Stage):
    kind: ClassVar[str] = "scheme"
    Config: ClassVar[type[StrictModel]] = SchemeConfig

    def __init__(self, config: StrictModel | None = None):
        super().__init__(config)
        self.schema = structured_schema(getattr(self.config, "response_schema", None), tuple(self.outputs))

    def recipe(self) -> dict[str, Any]:
        return schema_recipe(super().recipe(), self.schema)

    def output_schema(self) -> dict[str, Any]:  # type: ignore[override]
        return {**super().output_schema(), **schema_columns(self.schema)}

    def rng(self, *parts: Any) -> random.Random:
        return random.Random(short_digest([self.config.seed, self.name, *parts]))

    def request(self, prompt: str, system: str | None = None, max_tokens: int | None = None,
                temperature: float | None = None, schema: Any = None) -> ChatRequest:
        c = self.config
        return ChatRequest(messages=[{"role": "user", "content": prompt}], system=system,
                           temperature=c.temperature if temperature is None else temperature,
                           max_tokens=max_tokens or c.max_tokens, seed=c.seed, schema=schema)

    def response_request(self, prompt: str, system: str | None = None) -> ChatRequest:
        """A request of the response step: the configured system prompt and structured-output schema."""
        system = system if system is not None else self.config.response_system
        return self.request(prompt, system, schema=self.schema)

    async def respond(self, llm: Any, prompts: list[str], system: str | None = None) -> list[Completion]:
        """The teacher answers each prompt (the response step every scheme ends with)."""
        return await llm.generate([self.response_request(p, system) for p in prompts])

    def row(self, *, instruction: str, input: str = "", response: str | None, model: str | None, seed_id: str,
            error: str | None = None, system: str | None = None, **extra: Any) -> dict[str, Any]:
        """One output row in the shared record shape; `messages` only when there is a response.

        `system`, when given, opens `messages` and is kept as a `system` column (Orca).
        """
        user = f"{instruction}\n\n{input}" if input else instruction
        messages = None
        if response is not None and error is None:
            messages = conversation(system, [{"role": "user", "content": user}], response)
        if system is not None:
            extra["system"] = system
        rid = f"{self.name}-{short_digest([seed_id, instruction, input, sorted(extra.items(), key=str)], 16)}"
        if self.schema is not None:  # the response step's typed columns (a reply that breaks them fails the row)
            typed, error = structured_values(self.schema, Completion(texts=[response or ""], error=error))
            extra.update(typed)
            messages = messages if error is None else None
        return {"id": rid, "instruction": instruction, "input": input,
                "response": response if error is None else None, "messages": messages, "scheme": self.name,
                "model": model, "seed_id": seed_id, "error": error, **extra}

    def loss_hint(self, counts: dict[str, Any]) -> str:
        if counts.get("failed") and counts.get("failed") == counts.get("kept"):
            return "Every call failed: rerunning retries them; check the errors and the --llm."
        return ("A small teacher may not manage this scheme: use a stronger --llm, or a scheme small models can "
                "do (`factory schemes inspect`, docs/small-models.md).")

    def budget_per_job(self) -> tuple[float, float]:
        """Most requests and completion tokens one job can take (for `--dry-run`)."""
        return 1.0, float(self.config.max_tokens)

    def seeds_for(self, n: int) -> int:
        """Seed rows needed for `n` output rows (one each, unless a scheme says otherwise)."""
        return n

    def jobs(self, source: Any, limit: int | None, size: int, target: int | None = None) -> Iterator[list[dict]]:
        """Batches of seed rows; with `--n`, the seeds needed are sampled (seeded) from the whole set."""
        from factory.pipeline.execute import batches

        needed = self.seeds_for(target) if target else None
        if needed is None or needed >= source.manifest.rows:
            yield from batches(source, limit, size)
            return
        rows = source.read().sample(needed, seed=self.config.seed).to_dicts()
        for start in range(0, len(rows), size):
            yield rows[start:start + size]


_ITEM = re.compile(r"^\s*(?:\d+[.)\]:]|[-*•]|#\d+[.:]?)\s+(.+?)\s*$")


def parse_list(text: str) -> list[str]:
    """Items of a numbered or bulleted list in a teacher's reply; [] when the reply holds no list."""
    items = []
    for line in (text or "").splitlines():
        m = _ITEM.match(line)
        if m:
            item = m.group(1).strip().strip('"').strip()
            if len(item.split()) >= 3:  # "1. Yes" is not an instruction
                items.append(item)
    return list(dict.fromkeys(items))


def strip_label(text: str, labels: tuple[str, ...]) -> str:
    """Drop a leading label the teacher echoed (e.g. "#Rewritten Prompt#:") and surrounding quotes."""
    out = (text or "").strip()
    for label in labels:
        if out.lower().startswith(label.lower()):
            out = out[len(label):].lstrip(" :\n")
    return out.strip().strip('"').strip()
