"""Evol-Instruct (WizardLM): evolve seed instructions in depth and in breadth for M rounds, then answer them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from factory.pipeline.execute import user_turn
from factory.pipeline.stage import Paper
from factory.schemes import SCHEMES
from factory.schemes.base import COMMON_OUTPUTS, Scheme, SchemeConfig, strip_label
from factory.schemes.evol_instruct.elimination import eliminate

DEPTH = ("add_constraints", "deepening", "concretizing", "increase_reasoning", "complicate_input")
OPERATIONS = (*DEPTH, "breadth")
LABELS = ("#Rewritten Prompt#", "#Created Prompt#", "Rewritten Prompt", "Created Prompt")


class EvolConfig(SchemeConfig):
    rounds: int = Field(4, ge=1, le=10, description="evolution rounds (M); the paper uses 4")
    operations: list[str] = Field(list(OPERATIONS), description="operations drawn from, uniformly, each round")
    evolve_max_tokens: int = Field(384, ge=16, description="max tokens of an evolved instruction")
    include_seeds: bool = Field(False, description="also keep the seed instructions (round 0) in the output")


@SCHEMES.register
class EvolInstruct(Scheme):
    """Evolves seed instructions into harder and rarer ones (in-depth and in-breadth), then answers them."""

    name = "evol-instruct"
    version = "1"
    paper = Paper(title="WizardLM: Empowering Large Language Models to Follow Complex Instructions",
                  url="https://arxiv.org/abs/2304.12244", authors="Xu et al.", year=2023)
    inputs = {"instruction": "str"}
    outputs = {**COMMON_OUTPUTS, "parent_id": "str", "round": "int", "operation": "str", "evolution": "list[str]"}
    Config = EvolConfig

    def recipe(self) -> dict[str, Any]:
        bad = [op for op in self.config.operations if op not in OPERATIONS]
        if bad:
            from factory.errors import BadInput

            raise BadInput(f"unknown evolution operation {bad[0]!r} (known: {', '.join(OPERATIONS)})")
        return super().recipe()

    def budget_per_job(self) -> tuple[float, float]:
        c = self.config
        return 2.0 * c.rounds, float(c.rounds * (c.evolve_max_tokens + c.max_tokens))

    def seeds_for(self, n: int) -> int:
        return -(-n // self.config.rounds)

    def evolve_prompt(self, operation: str, prompt: str) -> str:
        return self.render(f"{operation}.jinja", prompt=prompt)

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        c = self.config
        out: list[dict[str, Any]] = []
        # one lineage per seed: the instruction it has evolved to so far, and the path that got it there
        lineages = []
        for row in rows:
            seed_id = str(row.get("id") or row["instruction"][:40])
            text = user_turn(row)
            lineages.append({"seed_id": seed_id, "text": text, "parent_id": seed_id, "path": []})
            if c.include_seeds and row.get("response"):
                out.append(self.row(instruction=text, response=row["response"], model=None, seed_id=seed_id,
                                    parent_id=None, round=0, operation="seed", evolution=[]))
        for round_no in range(1, c.rounds + 1):
            ops = [self.rng(lin["seed_id"], round_no).choice(c.operations) for lin in lineages]
            evolved = await llm.generate([
                self.request(self.evolve_prompt(op, lin["text"]), max_tokens=c.evolve_max_tokens)
                for op, lin in zip(ops, lineages, strict=True)])
            texts = [strip_label(e.text or "", LABELS) if e.ok else "" for e in evolved]
            answers = await self.respond(llm, [t or "-" for t in texts])
            for lin, op, e, text, answer in zip(lineages, ops, evolved, texts, answers, strict=True):
                common = {"seed_id": lin["seed_id"], "parent_id": lin["parent_id"], "round": round_no,
                          "operation": op, "evolution": [*lin["path"], op]}
                error = e.error or (answer.error if e.ok else None)
                if error:
                    out.append(self.row(instruction=text or lin["text"], response=None, model=answer.model or e.model,
                                        error=error, **common))
                    continue
                reason = eliminate(lin["text"], text, answer.text or "")
                if reason:  # the lineage goes on from the parent next round
                    self.counters[f"eliminated_{reason}"] += 1
                    self.counters["dropped"] += 1
                    continue
                row = self.row(instruction=text, response=answer.text, model=answer.model, **common)
                out.append(row)
                lin.update(text=text, parent_id=row["id"], path=common["evolution"])
        return out
