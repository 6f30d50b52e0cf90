"""Evol-Instruct (WizardLM): evolve seed instructions in depth and in breadth for M rounds, then answer them."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from factory.records import Paper, user_turn
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

    @field_validator("operations")
    @classmethod
    def _known_operations(cls, value: list[str]) -> list[str]:
        bad = [op for op in value if op not in OPERATIONS]
        if bad:
            raise ValueError(f"unknown evolution operation {bad[0]!r} (known: {', '.join(OPERATIONS)})")
        return value


@SCHEMES.register
class EvolInstruct(Scheme):
    """Evolves seed instructions into harder and rarer ones (in-depth and in-breadth), then answers them."""

    name = "evol-instruct"
    small_model = ("poorly: a small model's evolutions mostly break WizardLM's elimination rules, so few rows "
                   "survive (the run says why); use a capable teacher")
    version = "1"
    paper = Paper(title="WizardLM: Empowering Large Language Models to Follow Complex Instructions",
                  url="https://arxiv.org/abs/2304.12244", authors="Xu et al.", year=2023)
    inputs = {"instruction": "str"}
    reads = {"response": "str"}  # a seed's own answer, kept with include_seeds
    outputs = {**COMMON_OUTPUTS, "parent_id": "str", "round": "int", "operation": "str", "evolution": "list[str]"}
    Config = EvolConfig

    def loss_hint(self, counts: dict[str, Any]) -> str:
        if any(k.startswith("eliminated_") and v for k, v in counts.items()):
            return ("The teacher's evolutions broke WizardLM's elimination rules: a small model cannot evolve "
                    "instructions; use a stronger --llm, or `factory build lamini` (docs/small-models.md).")
        return super().loss_hint(counts)

    def budget_per_job(self) -> tuple[float, float]:
        c = self.config
        return 2.0 * c.rounds, float(c.rounds * (c.evolve_max_tokens + c.max_tokens))

    def seeds_for(self, n: int) -> int:
        return -(-n // self.config.rounds)

    def evolve_prompt(self, operation: str, prompt: str) -> str:
        return self.render(f"{operation}.jinja", prompt=prompt)

    async def process(self, rows: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        """Every lineage runs its rounds on its own: its next request is queued as soon as its last answer
        arrives (one stream for all steps, so the pool stays full); rows come out in (round, seed) order,
        as if the rounds had run one after another."""
        from contextlib import aclosing

        from factory.llm.feed import RequestFeed

        c = self.config
        out: list[dict[str, Any]] = []
        lineages = []  # one per seed: the instruction it has evolved to so far, and the path that got it there
        for row in rows:
            seed_id = str(row.get("id") or row["instruction"][:40])
            text = user_turn(row)
            lineages.append({"seed_id": seed_id, "text": text, "parent_id": seed_id, "path": [], "round": 0})
            if c.include_seeds and row.get("response"):
                out.append(self.row(instruction=text, response=row["response"], model=None, seed_id=seed_id,
                                    parent_id=None, round=0, operation="seed", evolution=[]))
        feed = RequestFeed()
        steps: dict[int, tuple[int, str]] = {}  # stream index -> (lineage, "evolve" | "respond")
        made: list[tuple[int, int, dict[str, Any]]] = []  # (round, lineage, row)

        def next_round(k: int) -> None:
            lin = lineages[k]
            lin["round"] += 1
            if lin["round"] > c.rounds:
                return
            lin["op"] = self.rng(lin["seed_id"], lin["round"]).choice(c.operations)
            request = self.request(self.evolve_prompt(lin["op"], lin["text"]), max_tokens=c.evolve_max_tokens)
            steps[feed.put(request)] = (k, "evolve")

        for k in range(len(lineages)):
            next_round(k)
        if not steps:
            feed.close()
        async with aclosing(llm.stream(feed)) as stream:
            async for index, answer in stream:
                k, step = steps.pop(index)
                lin = lineages[k]
                common = {"seed_id": lin["seed_id"], "parent_id": lin["parent_id"], "round": lin["round"],
                          "operation": lin["op"], "evolution": [*lin["path"], lin["op"]]}
                if step == "evolve":
                    text = strip_label(answer.text or "", LABELS) if answer.ok else ""
                    if not answer.ok:
                        made.append((lin["round"], k, self.row(instruction=lin["text"], response=None,
                                                              model=answer.model, error=answer.error, **common)))
                        next_round(k)
                    elif not text:  # an empty rewrite brings no information: eliminated without asking
                        self.counters["eliminated_no_information_gain"] += 1
                        self.counters["dropped"] += 1
                        next_round(k)
                    else:
                        lin["child"] = text
                        steps[feed.put(self.response_request(text))] = (k, "respond")
                else:
                    text = lin.pop("child")
                    if not answer.ok:
                        made.append((lin["round"], k, self.row(instruction=text, response=None, model=answer.model,
                                                              error=answer.error, **common)))
                    elif reason := eliminate(lin["text"], text, answer.text or ""):
                        self.counters[f"eliminated_{reason}"] += 1  # the lineage goes on from the parent
                        self.counters["dropped"] += 1
                    else:
                        row = self.row(instruction=text, response=answer.text, model=answer.model, **common)
                        made.append((lin["round"], k, row))
                        lin.update(text=text, parent_id=row["id"], path=common["evolution"])
                    next_round(k)
                if not steps:
                    feed.close()
        made.sort(key=lambda item: (item[0], item[1]))
        return out + [row for _, _, row in made]
