"""Papers the cards cite: the three this project implements, the training methods, and stages' own papers.

A stage's `paper` (a `factory.pipeline.stage.Paper`, or the same keys in a manifest) becomes a `Citation`.
OpenBezoar is always cited (its recipe of schemes, judge filtering, sequential SFT and DPO is the factory's
pipeline); SPIN, Self-Data Distillation, DPO and LoRA where a stage name or training method uses them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Citation:
    key: str
    title: str
    url: str
    authors: str = ""
    year: int | None = None
    bibtex: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bibtex": self.bibtex or self.make_bibtex()}

    def make_bibtex(self) -> str:
        fields = [f"  title = {{{self.title}}}"]
        if self.authors:
            fields.append(f"  author = {{{self.authors}}}")
        if self.year:
            fields.append(f"  year = {{{self.year}}}")
        arxiv = re.search(r"arxiv\.org/abs/([0-9]{4}\.[0-9]{4,5})", self.url)
        if arxiv:
            fields += [f"  eprint = {{{arxiv.group(1)}}}", "  archivePrefix = {arXiv}"]
        fields.append(f"  url = {{{self.url}}}")
        return "@misc{" + self.key + ",\n" + ",\n".join(fields) + "\n}"


OPENBEZOAR = Citation(
    key="dissanayake2024openbezoar",
    title="OpenBezoar: Small, Cost-Effective and Open Models Trained on Mixes of Instruction Data",
    url="https://arxiv.org/abs/2404.12195",
    authors="Chandeepa Dissanayake and Lahiru Lowe and Sachith Gunasekara and Yasiru Ratnayake",
    year=2024,
)
SPIN = Citation(
    key="chen2024spin",
    title="Self-Play Fine-Tuning Converts Weak Language Models to Strong Language Models",
    url="https://arxiv.org/abs/2401.01335",
    authors="Zixiang Chen and Yihe Deng and Huizhuo Yuan and Kaixuan Ji and Quanquan Gu",
    year=2024,
)
SELF_DISTILL = Citation(
    key="thangarasa2024selfdistill",
    title="Self-Data Distillation for Recovering Quality in Pruned Large Language Models",
    url="https://arxiv.org/abs/2410.09982",
    authors="Vithursan Thangarasa and Ganesh Venkatesh and Mike Lasby and Nish Sinnadurai and Sean Lie",
    year=2024,
)
DPO = Citation(
    key="rafailov2023dpo",
    title="Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    url="https://arxiv.org/abs/2305.18290",
    authors="Rafael Rafailov and Archit Sharma and Eric Mitchell and Stefano Ermon and Christopher D. Manning "
            "and Chelsea Finn",
    year=2023,
)
LORA = Citation(
    key="hu2021lora",
    title="LoRA: Low-Rank Adaptation of Large Language Models",
    url="https://arxiv.org/abs/2106.09685",
    authors="Edward J. Hu and Yelong Shen and Phillip Wallis and Zeyuan Allen-Zhu and Yuanzhi Li and Shean Wang "
            "and Lu Wang and Weizhu Chen",
    year=2021,
)
# word in a stage name or training method -> the project paper that describes it
_PROJECT_RULES = ((re.compile(r"spin|self-play"), SPIN), (re.compile(r"distill|prun"), SELF_DISTILL),
                  (re.compile(r"\bdpo\b"), DPO), (re.compile(r"\blora\b|\badapter\b"), LORA))


def citation_from(paper: Any, fallback_key: str) -> Citation | None:
    """A `Paper`-like object or dict (title, url, authors?, year?, bibtex?) as a `Citation`; None if empty."""
    if paper is None:
        return None
    get = paper.get if isinstance(paper, dict) else (lambda k, d=None: getattr(paper, k, d))
    title, url = get("title") or "", get("url") or ""
    if not title:
        return None
    key = re.sub(r"[^a-z0-9]+", "", fallback_key.lower()) or "paper"
    return Citation(key=key, title=str(title), url=str(url), authors=str(get("authors", "") or ""),
                    year=get("year"), bibtex=str(get("bibtex", "") or ""))


def citations_for(words: Iterable[str], stage_papers: Iterable[Citation | None] = ()) -> list[Citation]:
    """OpenBezoar, the project papers whose methods appear in `words`, then the stages' own papers (deduped)."""
    text = " ".join(w.lower() for w in words)
    found = [OPENBEZOAR, *(paper for rule, paper in _PROJECT_RULES if rule.search(text))]
    found += [p for p in stage_papers if p is not None]
    out: list[Citation] = []
    seen: set[str] = set()
    for c in found:
        ident = (c.url or c.title).lower()
        if ident not in seen:
            seen.add(ident)
            out.append(c)
    return out
