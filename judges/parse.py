"""Read a judge's verdict out of its reply: a score on the rubric's scale, or a pairwise A/B/tie choice.

Judges answer in many shapes: `[[7]]`, `[[7.5]]`, `Rating: 8/10`, `**Score:** 9`, `8 out of 10`, a JSON
object `{"score": 6}` (what structured output returns), sometimes a refusal. `parse_score` tries the
shapes from the most to the least explicit and takes the first shape that occurs; a reply is never
given a default score: no score, a score outside the rubric's scale, a score stated on another scale
(`4/5` for a 1–10 rubric) or two different scores in one reply raise `VerdictError` with the reason.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

# Every quantifier that sits next to another one that could match the same characters is possessive (`*+`),
# so no reply makes a pattern backtrack: "Score" followed by 1,000 spaces used to take half an hour.
NUM = r"[-+]?\d++(?:\.\d++)?"
_WS = r"[^\S\n]*+"
_BOLD = r"(?:\*\*|__)?"
_DOUBLE = re.compile(rf"\[\[\s*+({NUM})\s*+(?:/\s*+({NUM})\s*+)?\]\]")
# "Score: 8", "**Score:** 9", "Rating - 6 / 10", "a score of 8 out of 10", "The overall rating is 7"
_LABELED = re.compile(
    rf"\b(?:score|rating|grade|mark)\b{_WS}{_BOLD}{_WS}(?:[:=\-]|is|of)?{_WS}{_BOLD}{_WS}"
    rf"({NUM})(?:{_WS}{_BOLD}\s*+(?:/|out\s++of)\s*+({NUM}))?",
    re.IGNORECASE,
)
_FRACTION = re.compile(rf"({NUM})\s*+(?:/|\bout\s++of\b)\s*+({NUM})", re.IGNORECASE)
_BARE = re.compile(rf"^\s*+(?:\*\*)?\s*+({NUM})\s*+(?:\*\*)?\s*+\.?\s*+$")
_REFUSAL = re.compile(r"\b(?:i\s*+(?:can(?:no|['’])t|cannot|am\s++unable|['’]m\s++unable|won['’]t)"
                      r"|i(?:['’]m|\s++am)\s++sorry|unable\s++to\s++(?:evaluate|rate|judge|assess|score)"
                      r"|as\s++an\s++ai)\b", re.IGNORECASE)
_PAIR = re.compile(r"\[\[\s*+(A|B|C|tie)\s*+\]\]", re.IGNORECASE)
_PAIR_LABELED = re.compile(r"\b(?:final\s++)?verdict\s*+[:=]\s*+\**+\s*+\[?\[?\s*+(A|B|C|tie)\b", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*+(\{[^`]*\})\s*+```")
MAX_REPLY = 100_000  # characters of a reply that are read for a verdict; a judge that writes more is cut
MAX_JSON_STARTS = 32  # "{" positions tried as the start of an embedded JSON object
SCORE_KEYS = ("score", "rating", "grade", "overall_score", "judge_score")
VERDICT_KEYS = ("verdict", "winner", "better", "choice")
RATIONALE_KEYS = ("rationale", "explanation", "reasoning", "reason", "justification")


class VerdictError(ValueError):
    """The reply holds no usable verdict; the message says why (kept as the row's `judge_error`)."""


@dataclass(frozen=True)
class Scale:
    """A rubric's closed score range, e.g. 1–10."""

    low: float
    high: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def label(self) -> str:
        return f"{_num(self.low)}–{_num(self.high)}"


@dataclass(frozen=True)
class Verdict:
    score: float
    rationale: str


def parse_score(text: str | None, scale: Scale) -> Verdict:
    """The score in a judge's reply, on `scale`; raises `VerdictError` rather than guess."""
    if not text or not text.strip():
        raise VerdictError("empty reply from the judge")
    text = text[:MAX_REPLY].strip()
    obj = json_object(text)
    if obj is not None:
        key = next((k for k in obj if k.lower() in SCORE_KEYS), None)
        if key is not None:
            value = _json_score(obj[key], scale)
            rationale = next((str(obj[k]) for k in obj if k.lower() in RATIONALE_KEYS and obj[k]), text)
            return Verdict(_check(value, scale), rationale.strip())
    # "[[7]]" and "Score: 7" both count, and must agree: "Score: 3 ... [[7]]" is ambiguous, not a 7.
    found = [_on_scale(m.group(1), m.group(2), scale) for p in (_DOUBLE, _LABELED) for m in p.finditer(text)]
    if found:
        return Verdict(_one(found, scale), text)
    # A bare "7/10" or "8 out of 10" counts only on the rubric's own scale ("3/4 of the steps" is not a score).
    found = [float(m.group(1)) for m in _FRACTION.finditer(text) if float(m.group(2)) == scale.high]
    if found:
        return Verdict(_one(found, scale), text)
    bare = _BARE.match(text)
    if bare:
        return Verdict(_check(float(bare.group(1)), scale), text)
    raise VerdictError(_missing("score", text))


def parse_pair(text: str | None) -> tuple[str, str]:
    """The pairwise verdict in a reply: ("A" | "B" | "C", rationale); "C" (and "tie") mean a tie."""
    if not text or not text.strip():
        raise VerdictError("empty reply from the judge")
    text = text[:MAX_REPLY].strip()
    obj = json_object(text)
    if obj is not None:
        key = next((k for k in obj if k.lower() in VERDICT_KEYS), None)
        if key is not None:
            value = str(obj[key]).strip().strip("[]").strip()
            if value.upper() not in ("A", "B", "C", "TIE"):
                raise VerdictError(f"verdict {obj[key]!r} is not A, B or C")
            rationale = next((str(obj[k]) for k in obj if k.lower() in RATIONALE_KEYS and obj[k]), text)
            return _pair_letter(value), rationale.strip()
    # "[[B]]" and "Verdict: A" both count, and must agree ("Verdict: A ... [[B]]" is ambiguous).
    found = {_pair_letter(m.group(1)) for p in (_PAIR, _PAIR_LABELED) for m in p.finditer(text)}
    if len(found) > 1:
        raise VerdictError(f"two different verdicts in one reply: {' and '.join(sorted(found))}")
    if found:
        return found.pop(), text
    raise VerdictError(_missing("verdict", text))


def json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text`: the whole reply, a ```json fence, or an object inside prose."""
    candidates = [text]
    fence = _FENCE.search(text)
    if fence:
        candidates.append(fence.group(1))
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    # Each try may read to the end of the reply: only the first few "{" are tried, so the work stays linear.
    decoder = json.JSONDecoder()
    for tries, match in enumerate(re.finditer(r"\{", text)):
        if tries >= MAX_JSON_STARTS:
            break
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def _json_score(value: Any, scale: Scale) -> float:
    if isinstance(value, bool) or value is None:
        raise VerdictError(f"score {json.dumps(value)} in the JSON reply is not a number")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    m = re.fullmatch(rf"\[?\[?\s*({NUM})\s*(?:(?:/|out\s+of)\s*({NUM}))?\s*\]?\]?", text, re.IGNORECASE)
    if not m:
        raise VerdictError(f"score {text!r} in the JSON reply is not a number")
    return _on_scale(m.group(1), m.group(2), scale)


def _on_scale(value: str, denominator: str | None, scale: Scale) -> float:
    """A score written as "8" or "8/10"; a denominator other than the scale's top is another scale."""
    if denominator is not None and float(denominator) != scale.high:
        raise VerdictError(f"score {value}/{denominator} is on another scale than the rubric's {scale.label()}")
    return float(value)


def _one(found: list[float], scale: Scale) -> float:
    distinct = sorted(set(found))
    if len(distinct) > 1:
        raise VerdictError(f"two different scores in one reply: {' and '.join(_num(v) for v in distinct)}")
    return _check(distinct[0], scale)


def _check(value: float, scale: Scale) -> float:
    if not math.isfinite(value):
        raise VerdictError(f"score {value} is not a finite number")
    if value not in scale:
        raise VerdictError(f"score {_num(value)} is outside the rubric's scale {scale.label()}")
    return value


def _missing(what: str, text: str) -> str:
    snippet = " ".join(text.split())
    snippet = snippet if len(snippet) <= 80 else snippet[:79] + "…"
    if _REFUSAL.search(text):
        return f"the judge declined to give a {what}: {snippet!r}"
    return f"no {what} found in the judge's reply: {snippet!r}"


def _pair_letter(value: str) -> str:
    value = value.upper()
    return "C" if value == "TIE" else value


def _num(value: float) -> str:
    return f"{value:g}"
