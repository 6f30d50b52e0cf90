"""The progress bar of an LLM run: rows done, req/s, tokens and dollars, refreshed a few times a second."""

from __future__ import annotations

import os
import sys
import time
from typing import Any


class Progress:
    def __init__(self, total: int | None, label: str, enabled: bool = True):
        self.bar = None
        self.done = 0
        self.start = time.monotonic()
        self.next_postfix = 0.0
        if enabled and not os.environ.get("TQDM_DISABLE"):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=label, unit="row", file=sys.stderr, dynamic_ncols=True,
                            mininterval=0.25, leave=False)  # each step clears its bar; commands print a summary

    def update(self, stats: Any) -> None:
        self.done += 1
        if self.bar is None:
            return
        self.bar.update(1)
        now = time.monotonic()
        if now >= self.next_postfix:  # formatting the postfix is the costly part: a few times a second
            self.next_postfix = now + 0.5
            self.bar.set_postfix_str(self._postfix(stats), refresh=False)

    def refresh(self, stats: Any) -> None:
        """New counters while no row arrives (a batch run polling its batches)."""
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(stats), refresh=True)

    @staticmethod
    def _postfix(stats: Any) -> str:
        tokens = stats.prompt_tokens + stats.completion_tokens
        parts = [f"{tokens:,} tok", f"${stats.usd:.4f}"]
        if stats.batch_status:
            parts.append(batch_summary(stats))
        if stats.cached:
            parts.append(f"{stats.cached} cached")
        if stats.failed:
            parts.append(f"{stats.failed} failed")
        if stats.retries:
            parts.append(f"{stats.retries} retries")
        return ", ".join(parts)

    def close(self, stats: Any) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(self._postfix(stats), refresh=False)
            self.bar.close()


def batch_summary(stats: Any) -> str:
    """`batches: 3 submitted, 1 in progress, 2 done (1 in_progress, 2 completed), 1,200/3,000 requests`: the
    run's batches (resumed ones too), by the provider's own status, and its request counts."""
    states = list(stats.batch_status.values())
    by: dict[str, int] = {}
    for st in states:
        by[st.status] = by.get(st.status, 0) + 1
    detail = ", ".join(f"{n} {status}" for status, n in sorted(by.items()))
    done = sum(st.done for st in states)
    finished, total = sum(st.finished for st in states), sum(st.total for st in states)
    return (f"batches: {len(states)} submitted, {len(states) - done} in progress, {done} done ({detail}), "
            f"{finished:,}/{total:,} requests")
