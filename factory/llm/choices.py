"""The probability a model gives each of a few short continuations (score tokens), from next-token distributions.

G-Eval (Liu et al. 2023, arXiv:2303.16634) scores with the expectation over the score tokens' probabilities
at the score position instead of the one score a model happens to write: one forward pass, a score for
every row, and a distribution that says how sure the judge was. A choice may span several tokens ("10" is
"1" then "0" in many tokenizers), so a choice's probability is that of its token path times the chance the
model stops there rather than going on to a longer choice:

    P("1") = P(1) · (1 − P(0 | 1)),    P("10") = P(1) · P(0 | 1)

`plan` lists the contexts (token prefixes after the prompt) whose next-token distribution is needed, grouped
so that one sequence per group serves all its prefixes; `masses` combines the distributions into each
choice's probability. Providers that run the model (hf, vllm) fill in the distributions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

Tokens = tuple[int, ...]


def plan(choice_ids: Sequence[Tokens]) -> list[Tokens]:
    """The token sequences to append to the prompt so that every needed distribution is read off them.

    Needed: the distribution after the prompt (context `()`) and after every proper prefix of a choice. A
    sequence `p` gives the distributions after each of its own prefixes, so only maximal prefixes are kept.
    """
    needed = {c[:k] for c in choice_ids for k in range(1, len(c))}
    maximal = [p for p in needed if not any(q != p and q[: len(p)] == p for q in needed)]
    return sorted(maximal) or [()]


def masses(choice_ids: Sequence[Tokens], prob: Callable[[Tokens, int], float]) -> list[float]:
    """Each choice's probability, given `prob(context, token)` = P(token | prompt + context)."""
    out = []
    for ids in choice_ids:
        path = 1.0
        for k, token in enumerate(ids):
            path *= prob(ids[:k], token)
        # the model may go on from here to a longer choice: that share is not this choice's
        going_on = {other[len(ids)] for other in choice_ids if len(other) > len(ids) and other[: len(ids)] == ids}
        if going_on:
            path *= max(0.0, 1.0 - sum(prob(ids, t) for t in going_on))
        out.append(path)
    return out


def expectation(probs: dict[str, float], values: dict[str, float]) -> tuple[float, dict[str, float], float]:
    """(expected value, normalised distribution, total mass the model put on the choices)."""
    total = sum(probs.get(c, 0.0) for c in values)
    if not total > 0:
        raise ValueError("the model put no probability on any of the score tokens")
    dist = {c: probs.get(c, 0.0) / total for c in values}
    return sum(values[c] * p for c, p in dist.items()), dist, total


def from_top_logprobs(logprobs: dict[str, Any] | None, choices: Sequence[str]) -> dict[str, float]:
    """Choice probabilities from an OpenAI-style `logprobs` object (`content[i].top_logprobs`).

    An API cannot be prefilled, so the reply is asked to hold the score alone ("[[7]]"); the score position is
    its first token that is one of the choices, and each choice gets the probability of the alternatives
    there that read as that choice. {} when no token of the reply is a choice.
    """
    wanted = set(choices)
    for position in (logprobs or {}).get("content") or []:
        if str(position.get("token", "")).strip() not in wanted:
            continue
        probs = dict.fromkeys(choices, 0.0)
        for alt in position.get("top_logprobs") or [{"token": position["token"], "logprob": position["logprob"]}]:
            token = str(alt.get("token", "")).strip()
            if token in wanted:
                probs[token] += math.exp(float(alt["logprob"]))
        return probs
    return {}
