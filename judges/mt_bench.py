"""MT-Bench-style grading: single answers scored 1–10 (`[[rating]]`), pairs compared (`[[A]]`, `[[B]]`, `[[C]]`).

`mt-bench-single` grades one answer, optionally against a reference answer (MT-Bench gives references for
math, reasoning and coding) and in the context of earlier turns (`history`). `mt-bench-pair` compares two
answers to the same question and always asks twice, with the answers in both orders: a verdict that
changes with the order is counted as a tie, and the run reports how often the two orders agreed.
The prompts are ours; the protocol follows Zheng et al. (2023).
"""

from __future__ import annotations

from typing import Any

from factory.judges import JUDGES
from factory.judges.parse import Scale, VerdictError, parse_pair
from factory.judges.reliability import Consistency
from factory.judges.rubric import SCORES_BY_LOGPROBS, Judge, JudgeConfig, Sample
from factory.records import Paper, user_turn

MT_BENCH = Paper(title="Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena",
                 url="https://arxiv.org/abs/2306.05685", authors="Lianmin Zheng et al.", year=2023)
VERDICT_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["rationale", "verdict"],
                  "properties": {"rationale": {"type": "string"},
                                 "verdict": {"type": "string", "enum": ["A", "B", "C"]}}}
# A verdict given with the answers swapped, read back in the original order.
SWAP = {"A": "B", "B": "A", "C": "C"}
SCORE_OF = {"A": 1.0, "B": 0.0, "C": 0.5}


@JUDGES.register
class MTBenchSingle(Judge):
    """Grade one answer 1–10 as MT-Bench does, against a reference answer where the row has one.

    Reads `instruction` and `response`; optional `reference` (a correct answer to compare with) and
    `history` (earlier turns as messages: the answer graded is the reply to the last user turn). Keeps
    every row unless --min-score is given.
    """

    name = "mt-bench-single"
    small_model = SCORES_BY_LOGPROBS
    version = "1"
    paper = MT_BENCH
    scale = Scale(1, 10)
    inputs = {"instruction": "str", "response": "str"}
    optional_inputs = {"reference": "str", "history": "list[message]", "category": "str"}
    system_template = "mt_bench_single_system.jinja"
    user_template = "mt_bench_single_user.jinja"

    def values(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"instruction": user_turn(row), "response": row["response"],
                "reference": (row.get("reference") or "").strip() or None, "history": row.get("history") or []}


@JUDGES.register
class MTBenchPair(Judge):
    """Compare two answers to one question ([[A]], [[B]] or [[C]] for a tie), asking in both orders.

    Reads `instruction`, `response_a`, `response_b` (optional `reference`). `judge_score` is A's share:
    1 when A wins in both orders, 0 when B does, 0.5 for a tie or when the orders disagree;
    `judge_verdict` says A, B or tie and `judge_consistent` whether both orders agreed.
    """

    name = "mt-bench-pair"
    small_model = "no: a pairwise verdict must be written out, and small models rarely write a parseable one"
    version = "1"
    paper = MT_BENCH
    scale = Scale(0, 1)
    agreement_tolerance = None  # verdicts are categories: only exact agreement means anything
    supports_logprobs = False  # a verdict from two orders, not one score
    inputs = {"instruction": "str", "response_a": "str", "response_b": "str"}
    optional_inputs = {"reference": "str"}
    outputs = {**Judge.outputs, "judge_verdict": "str", "judge_consistent": "bool"}
    system_template = "mt_bench_pair_system.jinja"
    user_template = "mt_bench_pair_user.jinja"

    def __init__(self, config: JudgeConfig | None = None):
        super().__init__(config)
        self.consistency = Consistency()

    def prompts(self, row: dict[str, Any], structured: bool) -> list[tuple[str, str]]:
        base = {"instruction": user_turn(row), "reference": (row.get("reference") or "").strip() or None,
                "structured": structured}
        orders = [(row["response_a"], row["response_b"]), (row["response_b"], row["response_a"])]
        return [(self.render(self.system_template, **base),
                 self.render(self.user_template, **base, answer_a=first, answer_b=second))
                for first, second in orders]

    def read(self, texts: list[str | None]) -> Sample:
        first, why_first = parse_pair(texts[0])
        try:
            swapped, why_swapped = parse_pair(texts[1])
        except VerdictError as exc:
            raise VerdictError(f"answers swapped: {exc}") from None
        second = SWAP[swapped]
        consistent = first == second
        verdict = first if consistent else "C"
        return Sample(SCORE_OF[verdict], f"[A shown first] {why_first}\n\n[B shown first] {why_swapped}",
                      {"verdict": verdict, "consistent": consistent})

    def combine(self, samples: list[Sample]) -> dict[str, Any]:
        for s in samples:
            self.consistency.add(s.extra["consistent"], s.extra["verdict"])
        share = sum(s.score for s in samples) / len(samples)
        verdict = "A" if share > 0.5 else "B" if share < 0.5 else "tie"
        return {"judge_verdict": verdict, "judge_consistent": all(s.extra["consistent"] for s in samples)}

    def response_schema(self) -> dict[str, Any]:
        return VERDICT_SCHEMA

    def extra_stats(self) -> dict[str, Any]:
        return self.consistency.summary()
