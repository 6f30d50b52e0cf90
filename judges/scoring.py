"""How a judge turns its model's answer into a score: a written verdict, or the score tokens' probabilities.

`verdict`: the judge writes a rationale and a score, and `factory.judges.parse` reads it. Strong API models do
this well; a 135M model almost never writes a parseable verdict.

`logprobs` (G-Eval, Liu et al. 2023, arXiv:2303.16634): the judge is asked for the score alone and the score is
the expectation over the probabilities the model gives each score token at the score position; the
distribution is kept (`judge_probs`). One forward pass per row, a score for every row, no parsing. Local
models (`hf:`) compute it exactly, with the reply prefilled up to the score (`[[`); OpenAI-compatible APIs
that return `top_logprobs` give it from the first score token of a short reply (`--scoring logprobs`).

`auto` (the default) is `logprobs` where the provider runs the model itself and `verdict` elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

from factory.errors import BadInput
from factory.judges.parse import Scale, VerdictError
from factory.llm.choices import expectation
from factory.llm.types import Completion

SCORINGS = ("auto", "verdict", "logprobs")
PREFIX = "[["  # every built-in rubric writes its score as [[N]]: prefilled, the next token is the score
G_EVAL = "G-Eval (Liu et al. 2023, arXiv:2303.16634)"


def resolve(wanted: str, provider: Any, supports_choices: bool, repeats: int) -> str:
    """The scoring a run uses: `wanted` checked against what the provider and the rubric can do."""
    how = getattr(provider, "choice_scoring", None)
    if wanted == "auto":
        return "logprobs" if how == "native" and supports_choices and repeats == 1 else "verdict"
    if wanted == "logprobs":
        if not supports_choices:
            raise BadInput("--scoring logprobs: this rubric compares answers and has no score tokens; use verdict")
        if how is None:
            raise BadInput(f"--scoring logprobs: {provider.spec} returns no token probabilities; use --scoring "
                           "verdict, hf:MODEL, or an OpenAI-compatible server that returns logprobs")
        if repeats > 1:
            raise BadInput("--scoring logprobs gives each row its whole score distribution; --repeats needs "
                           "sampled verdicts (--scoring verdict)")
    return wanted


def choices(scale: Scale) -> dict[str, float]:
    """Score token -> value: the whole numbers of the scale."""
    low, high = int(scale.low), int(scale.high)
    if (low, high) != (scale.low, scale.high) or high <= low:
        raise BadInput(f"logprob scoring needs a scale of whole numbers, not {scale.label()}")
    return {str(v): float(v) for v in range(low, high + 1)}


def read(completion: Completion, values: dict[str, float]) -> tuple[float, str, float]:
    """(score, `judge_probs` as JSON, mass on the score tokens); raises `VerdictError` without probabilities."""
    probs = completion.choice_probs
    if not probs:
        raise VerdictError(f"no score token in the judge's reply: {(completion.text or '')[:80]!r}")
    try:
        score, dist, mass = expectation(probs, values)
    except ValueError as exc:
        raise VerdictError(str(exc)) from None
    return score, json.dumps({k: round(v, 6) for k, v in dist.items()}), mass
