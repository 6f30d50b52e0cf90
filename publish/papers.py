"""The papers a card cites: OpenBezoar (the factory's pipeline), then the papers the lineage's stages declared.

Nothing is guessed from names: a scheme, judge or dataset stage declares its `paper` (recorded in its version's
manifest, or looked up from its plugin for versions written before), a trainer method and a tuning mode declare
theirs in `factory.trainers` (looked up by the CLI, since publish does not import trainers).
"""

from __future__ import annotations

from collections.abc import Iterable

from factory.papers import DPO, LORA, OPENBEZOAR, QLORA, SELF_DISTILL, SPIN
from factory.records import Paper

__all__ = ["DPO", "LORA", "OPENBEZOAR", "QLORA", "SELF_DISTILL", "SPIN", "citations_for"]


def citations_for(papers: Iterable[Paper | None]) -> list[Paper]:
    """OpenBezoar, then `papers` in order, each once (by URL, else title); every one with a BibTeX key."""
    out: list[Paper] = []
    seen: set[str] = set()
    for paper in (OPENBEZOAR, *papers):
        ident = paper and (paper.url or paper.title).lower()
        if paper is not None and ident not in seen:
            seen.add(ident)
            out.append(paper.with_key(f"paper{len(out)}"))
    return out
