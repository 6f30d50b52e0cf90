"""The novelty filter of instruction-writing schemes: drop what merely copies a seed or an earlier instruction.

As in Self-Instruct (Wang et al. 2023, arXiv:2212.10560) and LaMini-LM, a generated instruction is kept only
when its ROUGE-L F-measure against every seed example and every instruction kept so far is below a threshold
(0.7). Small teachers copy their few-shot examples verbatim; this is what keeps those copies out.

ROUGE-L here is the longest common subsequence of lower-cased word tokens, F1 of its precision and recall
(what `rouge-score`'s `rougeL` computes without stemming). An inverted index gives each candidate an upper
bound (shared tokens), so only the few texts that could reach the threshold get the quadratic LCS.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall((text or "").lower())


def lcs(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (one row of the table at a time)."""
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(a: list[str], b: list[str]) -> float:
    """ROUGE-L F1 of two token lists."""
    if not a or not b:
        return 0.0
    common = lcs(a, b)
    return 0.0 if common == 0 else 2 * common / (len(a) + len(b))


class Novelty:
    """Seeds and kept instructions; `verdict(text)` says whether a new one is a copy (and of what)."""

    def __init__(self, threshold: float, seeds: list[str]):
        self.threshold = threshold
        self._texts: list[list[str]] = []
        self._is_seed: list[bool] = []
        self._index: dict[str, list[tuple[int, int]]] = defaultdict(list)  # token -> (text, count)
        for seed in seeds:
            self._add(tokens(seed), True)

    def _add(self, toks: list[str], seed: bool) -> None:
        i = len(self._texts)
        self._texts.append(toks)
        self._is_seed.append(seed)
        for token, count in Counter(toks).items():
            self._index[token].append((i, count))

    def verdict(self, text: str) -> str | None:
        """"copied_seed", "near_duplicate" (of a kept instruction) or None (novel: it is kept from now on)."""
        toks = tokens(text)
        if not toks:
            return "near_duplicate"
        shared: Counter[int] = Counter()
        for token, count in Counter(toks).items():
            for i, other in self._index.get(token, ()):
                shared[i] += min(count, other)
        worst: tuple[float, int] | None = None
        for i, bound in shared.items():
            # the LCS is at most the shared tokens: most texts are ruled out without computing it
            if 2 * bound / (len(toks) + len(self._texts[i])) < self.threshold:
                continue
            score = rouge_l(toks, self._texts[i])
            if score >= self.threshold and (worst is None or self._is_seed[i] > self._is_seed[worst[1]]):
                worst = (score, i)
        if worst is not None:
            return "copied_seed" if self._is_seed[worst[1]] else "near_duplicate"
        self._add(toks, False)
        return None
