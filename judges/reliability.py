"""How far a judge can be trusted on one run: the statistics that go into the manifest.

With `--repeats K` every row is scored K times (K samples of one request): a row's score is the mean of
its samples, its spread their standard deviation, and the run reports the mean spread and how often
the K samples agreed (exactly, and within a tolerance). Pairwise judges also report how often the two
orders of a pair (A first, then B first) gave the same verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import fmean, pstdev
from typing import Any


@dataclass
class Reliability:
    repeats: int
    tolerance: float | None = 1.0  # "agree within": None where scores are categories (pairwise)
    rows: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    spread_total: float = 0.0
    spread_max: float = 0.0
    agree_exact: int = 0
    agree_within: int = 0
    unparsed_samples: int = 0
    failed_rows: int = 0

    def add(self, scores: list[float]) -> float | None:
        """Record one row's sample scores; returns the row's spread (None with a single sample)."""
        score = fmean(scores)
        self.rows += 1
        self.total += score
        self.total_sq += score * score
        if self.repeats == 1:
            return None
        spread = pstdev(scores) if len(scores) > 1 else 0.0
        self.spread_total += spread
        self.spread_max = max(self.spread_max, spread)
        # A row with unparsed samples cannot count as agreeing: its K samples were not all comparable.
        complete = len(scores) == self.repeats
        self.agree_exact += complete and max(scores) == min(scores)
        if self.tolerance is not None:
            self.agree_within += complete and max(scores) - min(scores) <= self.tolerance
        return spread

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rows_scored": self.rows, "rows_failed": self.failed_rows, "repeats": self.repeats,
                               "unparsed_samples": self.unparsed_samples}
        if self.rows:
            mean = self.total / self.rows
            out["mean"] = round(mean, 4)
            out["std"] = round(math.sqrt(max(0.0, self.total_sq / self.rows - mean * mean)), 4)
        if self.repeats > 1 and self.rows:
            out["spread"] = round(self.spread_total / self.rows, 4)
            out["max_spread"] = round(self.spread_max, 4)
            out["agreement"] = round(self.agree_exact / self.rows, 4)
            if self.tolerance is not None:
                out[f"agreement_within_{self.tolerance:g}"] = round(self.agree_within / self.rows, 4)
        return out


@dataclass
class Consistency:
    """Pairwise judging: verdicts of the two orders of each sample, and the outcome counts."""

    consistent: int = 0
    inconsistent: int = 0
    a_wins: int = 0
    b_wins: int = 0
    ties: int = 0

    def add(self, consistent: bool, verdict: str) -> None:
        if consistent:
            self.consistent += 1
        else:
            self.inconsistent += 1
        if verdict == "A":
            self.a_wins += 1
        elif verdict == "B":
            self.b_wins += 1
        else:
            self.ties += 1

    def summary(self) -> dict[str, Any]:
        total = self.consistent + self.inconsistent
        return {"consistency_rate": round(self.consistent / total, 4) if total else None,
                "inconsistent": self.inconsistent, "a_wins": self.a_wins, "b_wins": self.b_wins, "ties": self.ties}


def merge_tallies(into: Any, other: Any) -> None:
    """Add the counts of `other` (the same dataclass, filled by another worker) into `into`; settings stay."""
    from dataclasses import fields

    for f in fields(into):
        if f.name in ("repeats", "tolerance"):
            continue
        mine, theirs = getattr(into, f.name), getattr(other, f.name)
        setattr(into, f.name, max(mine, theirs) if f.name == "spread_max" else mine + theirs)
