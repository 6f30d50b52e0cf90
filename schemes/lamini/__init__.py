"""LaMini-LM: generate new instructions from seed examples (example-guided) and from topics (topic-guided).

Each generation request shows a few seed instructions, optionally names a topic (Wikipedia-category style,
from the shipped list or the user's), and asks for a numbered list of new instructions; then the teacher
answers every instruction. A reply without a parseable list becomes one row with an error. A generated
instruction whose ROUGE-L against a seed or an instruction already kept reaches `novelty` (0.7) is dropped
before it is answered, counted `copied_seed` or `near_duplicate` (the Self-Instruct / LaMini-LM filter).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from factory.errors import BadInput
from factory.pipeline.stage import is_blank
from factory.records import Paper
from factory.schemes import SCHEMES
from factory.schemes.base import COMMON_OUTPUTS, Scheme, SchemeConfig, parse_list
from factory.schemes.novelty import Novelty


class LaMiniConfig(SchemeConfig):
    per_request: int = Field(5, ge=1, le=50, description="instructions asked for in one generation request")
    examples: int = Field(3, ge=1, le=10, description="seed instructions shown in each request")
    topic_share: float = Field(0.5, ge=0, le=1, description="share of requests that are topic-guided")
    topics: str = Field("seeds:topics", description="topic list: 'seeds:topics' or a text file, one topic a line")
    generate_max_tokens: int = Field(512, ge=16)
    requests: int | None = Field(None, ge=1, description="generation requests to plan (default: just enough for "
                                                          "--n); more leaves room for copies the filter drops")
    novelty: float = Field(0.7, gt=0, le=1, description="drop an instruction whose ROUGE-L against a seed or a kept "
                                                         "instruction is at least this (1: only exact copies)")

    @field_validator("topics")
    @classmethod
    def _topics_listed(cls, value: str, info: ValidationInfo) -> str:
        topics = read_topics(value)
        if topics is None:
            raise ValueError(f"no such file {value!r}")
        if not topics and info.data.get("topic_share", 0) > 0:
            raise ValueError(f"{value!r} lists no topics")
        return value


def read_topics(spec: str) -> list[str] | None:
    """The topics of a list ('seeds:topics' or a text file, one a line); None when there is no such file."""
    from factory.data import resolve_seed

    path = Path(resolve_seed(spec))
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{spec}: not UTF-8 text ({exc.reason} at byte {exc.start}); is it a binary file?") from None
    return [t.strip() for t in text.splitlines() if t.strip()]


@SCHEMES.register
class LaMini(Scheme):
    """Example-guided and topic-guided instruction generation, then responses (LaMini-LM)."""

    name = "lamini"
    small_model = ("yes: topic-guided requests (--set topic_share=1.0), examples=2 and more requests than rows"
                   " (requests=N); the novelty filter drops copied seeds")
    version = "2"
    paper = Paper(title="LaMini-LM: A Diverse Herd of Distilled Models from Large-Scale Instructions",
                  url="https://arxiv.org/abs/2304.14402", authors="Wu et al.", year=2023)
    inputs = {"instruction": "str"}
    outputs = {**COMMON_OUTPUTS, "guidance": "str", "topic": "str", "request_id": "int"}
    prompt_columns = ()  # its jobs are planned requests, not seed rows: blank seeds are left out of the pool instead
    Config = LaMiniConfig

    def recipe(self) -> dict[str, Any]:
        return {**super().recipe(), "topics_list": self.topic_list()}  # the topics' text names the version too

    def topic_list(self) -> list[str]:
        topics = read_topics(self.config.topics)
        if topics is None:  # the file went away after the config was checked
            raise BadInput(f"topics: no such file {self.config.topics!r}")
        return topics

    def __init__(self, config: LaMiniConfig | None = None):
        super().__init__(config)
        for key in ("copied_seed", "near_duplicate"):
            self.counters[key] = 0
        self.novelty = Novelty(self.config.novelty, [])

    def jobs(self, source: Any, limit: int | None, size: int, target: int | None = None) -> Iterator[list[dict]]:
        """One job per generation request, planned up front from the seed pool."""
        # Real seed sets often have no `id` (dolly-15k): read only what is there, and never a column twice.
        pool = source.scan().select(["id", "instruction"] if "id" in source.manifest.columns else ["instruction"])
        seeds = pool.collect().to_dicts() if limit is None else pool.head(limit).collect().to_dicts()
        seeds = [s for s in seeds if not is_blank(s["instruction"])]  # an empty example teaches the teacher nothing
        if not seeds:
            return
        c = self.config
        self.novelty = Novelty(c.novelty, [s["instruction"] for s in seeds])
        topics = self.topic_list()
        wanted = target or len(seeds)
        jobs = []
        for i in range(c.requests or -(-wanted // c.per_request)):
            rng = self.rng("request", i)
            examples = rng.sample(seeds, min(c.examples, len(seeds)))
            topic = rng.choice(topics) if topics and rng.random() < c.topic_share else None
            jobs.append({"request_id": i, "examples": examples, "topic": topic})
        per_batch = max(1, size // c.per_request)
        for start in range(0, len(jobs), per_batch):
            yield jobs[start:start + per_batch]

    def budget_per_job(self) -> tuple[float, float]:
        c = self.config
        return 1.0 + c.per_request, float(c.generate_max_tokens + c.per_request * c.max_tokens)

    def generation_prompt(self, job: dict[str, Any]) -> str:
        examples = [e["instruction"] for e in job["examples"]]
        if job["topic"]:
            return self.render("topic_guided.jinja", examples=examples, count=self.config.per_request,
                               topic=job["topic"])
        return self.render("example_guided.jinja", examples=examples, count=self.config.per_request)

    async def process(self, jobs: list[dict[str, Any]], llm: Any) -> list[dict[str, Any]]:
        c = self.config
        replies = await llm.generate([self.request(self.generation_prompt(j), max_tokens=c.generate_max_tokens)
                                      for j in jobs])
        out: list[dict[str, Any]] = []
        todo: list[tuple[dict[str, Any], str]] = []
        for job, reply in zip(jobs, replies, strict=True):
            provenance = {"guidance": "topic" if job["topic"] else "example", "topic": job["topic"],
                          "request_id": job["request_id"]}
            seed_id = ",".join(str(e.get("id") or "") for e in job["examples"])
            items = parse_list(reply.text or "")[: c.per_request] if reply.ok else []
            if not items:
                error = reply.error or f"no instruction list in the teacher's reply: {(reply.text or '')[:80]!r}"
                out.append(self.row(instruction="", response=None, model=reply.model, seed_id=seed_id, error=error,
                                    **provenance))
                continue
            for item in items:
                copy = self.novelty.verdict(item)
                if copy is not None:  # never answered, never stored: a copy teaches nothing new
                    self.counters[copy] += 1
                    self.counters["dropped"] += 1
                    continue
                todo.append(({"seed_id": seed_id, **provenance}, item))
        answers = await self.respond(llm, [item for _, item in todo])
        for (meta, item), answer in zip(todo, answers, strict=True):
            out.append(self.row(instruction=item, response=answer.text, model=answer.model, error=answer.error,
                                **meta))
        return out
